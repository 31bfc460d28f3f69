"""scripts/vm.sh (docs/vm.md): a guest on Debian's kernel runs this machine's binaries with kernel
TLS. Where /dev/kvm cannot boot a stock kernel, vm.sh exits 77 with one line saying why and these
tests skip with it; EDGECERT_VM_ACCEL=tcg (or auto) runs them emulated instead (about 10 s a boot
here, plus a one-time fetch of the kernel package)."""
import os
import re
import subprocess
import tempfile

import pytest

SRC = os.environ.get("EDGECERT_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
VM = os.path.join(SRC, "scripts", "vm.sh")


def vm(*args, env=None):
    p = subprocess.run([VM, *args], cwd=SRC, env=dict(os.environ, **(env or {})),
                       capture_output=True, text=True, timeout=600)
    if p.returncode == 77:
        # The whole answer is one line with the reason, and nothing was fetched or booted.
        assert re.fullmatch(r"no usable /dev/kvm: .+\n", p.stdout), p.stdout + p.stderr
        assert "fetching" not in p.stderr, p.stderr
        pytest.skip(p.stdout.strip())
    return p


def test_check_boots_debians_kernel_with_ktls():
    p = vm("check")
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    m = re.search(r"^vm: kernel package linux-image-\S+, release (\S+), accelerator (kvm|tcg)$",
                  out, re.M)
    assert m, out
    assert f"PASS kernel {m.group(1)}" in out
    assert re.search(r"^PASS tcp_available_ulp: .*\btls\b", out, re.M), out
    assert "PASS setsockopt(TCP_ULP, tls) on a connected loopback socket" in out
    assert "PASS setsockopt(SOL_TLS, TLS_TX, AES-128-GCM)" in out
    assert re.search(r"^PASS \S+ --version: edgecert \S+$", out, re.M), out
    assert "FAIL" not in out
    assert re.search(r"^vm: boot \d+\.\d\d s .*total \d+\.\d\d s$", out, re.M), out
    assert out.rstrip().endswith("vm: check passed")


def test_run_gives_the_command_its_status_output_environment_and_shares(tmp_path):
    # One boot checks what a caller relies on: exit status, stdout and stderr kept apart, the
    # environment (quoting intact), the working directory, a writable share, a read-only host
    # root and a /tmp of the guest's own.
    hidden = tempfile.mkdtemp(prefix="edgecert-vm-hidden.")
    try:
        script = (
            'echo "to stdout"; echo "to stderr" >&2; '
            'printf %s "$EDGECERT_TEST_VALUE" >"$EDGECERT_VM_OUT/value"; '
            'printf %s "$PWD|$EDGECERT_IN_VM|$EDGECERT_VM_OUT" >"$EDGECERT_VM_OUT/where"; '
            f'if touch {SRC}/.vm-write-probe 2>/dev/null; then echo root-writable; fi; '
            f'if [ -e {hidden} ]; then echo host-tmp-visible; fi; '
            'exit 7')
        value = "a b'c\"$HOME\\n"
        p = vm("run", "--share", str(tmp_path), "--", "/bin/bash", "-c", script,
               env={"EDGECERT_TEST_VALUE": value})
    finally:
        os.rmdir(hidden)
    assert p.returncode == 7, p.stdout + p.stderr
    assert p.stdout == "to stdout\n", p.stdout + p.stderr
    # (vm.sh's own lines start with "vm: ", such as EDGECERT_VM_ACCEL=auto's note on emulating)
    assert [l for l in p.stderr.splitlines() if not l.startswith("vm: ")] == ["to stderr"], p.stderr
    assert (tmp_path / "value").read_text() == value
    assert (tmp_path / "where").read_text() == f"{os.path.realpath(SRC)}|1|{tmp_path}"
    assert not os.path.exists(os.path.join(SRC, ".vm-write-probe"))
