#pragma once
// Subcommand table. Each command lives in its own cmd_<name>.cpp and is listed in commands.cpp.
namespace edgecert::app {

int dispatch(int argc, char** argv);

// Each takes the arguments after the subcommand name; returns the process exit code.
int cmd_version(int argc, char** argv);
int cmd_issue(int argc, char** argv);
int cmd_renew(int argc, char** argv);
// `edgecert renew` against a cluster (cmd_renew_cluster.cpp): NAMEs or a cluster flag select it.
bool renew_targets_cluster(int argc, char** argv);
int cmd_renew_cluster(int argc, char** argv);
// `edgecert renew --config FILE NAME` for a running `edgecert run` (cmd_renew_run.cpp).
bool renew_targets_run(int argc, char** argv);
int cmd_renew_run(int argc, char** argv);
int cmd_revoke(int argc, char** argv);
int cmd_terminator(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_controller(int argc, char** argv);
int cmd_status(int argc, char** argv);

}  // namespace edgecert::app
