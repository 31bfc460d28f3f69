#pragma once
// How many CPUs this process may run on: its affinity mask (taskset, cpuset cgroups), not the
// machine's count. Worker and parser thread counts follow it; more threads than CPUs only add
// lock traffic and context switches.
#include <sched.h>

#include <algorithm>
#include <thread>

namespace edgecert {

inline unsigned usable_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(std::max(1, CPU_COUNT(&set)));
    return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace edgecert
