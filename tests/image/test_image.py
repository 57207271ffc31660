"""The container image, run with podman (runc) under the chart's own security context.

The security context is read from the rendered chart (helm-python-sdk, as tests/chart),
turned into podman flags, and a key this file does not know fails the test, so the chart
cannot tighten or loosen it without this test following. Then, in the image:

- `mailops check` on examples/ (mounted read-only) succeeds;
- `mailops run` with the chart's arguments and environment, in-cluster but with no API
  server reachable, answers `/healthz` 200 on the `http` port as the liveness probe asks,
  and `/readyz` 503.

Needs root, podman and runc, and an image built by tools/image/build, named by
MAILOPS_IMAGE; MAILOPS_CONTAINERS is the container storage that script used. Skipped
without MAILOPS_IMAGE.

    MAILOPS_IMAGE=$(tools/image/build) python -m pytest tests/image
"""

import json
import os
import subprocess
import tempfile
import threading
import unittest
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "mailops"
IMAGE = os.environ.get("MAILOPS_IMAGE", "")
STORAGE = Path(
    os.environ.get(
        "MAILOPS_CONTAINERS", Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "containers"
    )
)
# The user the image and the chart name.
NONROOT = 65532


def podman(*args, check=True, timeout=120):
    # runc: crun 1.8 refuses this kind of host's hybrid cgroup layout.
    command = [
        "podman", "--root", str(STORAGE / "root"), "--runroot", str(STORAGE / "run"),
        "--runtime", "runc", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=timeout)


def chart_container():
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render({}, name="mailops", namespace="mailops-system")
    for path, text in manifests.items():
        if path.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("kind") == "Deployment":
                pod = doc["spec"]["template"]["spec"]
                (container,) = pod["containers"]
                return pod, container
    raise AssertionError("the chart renders no Deployment")


def security_flags(pod, container):
    """podman flags for the pod's and the container's securityContext, as the kubelet
    would apply them; fails on any setting it does not translate."""
    merged = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    flags, user, group = [], None, None
    for key, value in merged.items():
        if key == "runAsUser":
            user = value
        elif key == "runAsGroup":
            group = value
        elif key == "runAsNonRoot":
            assert value is True, merged
        elif key == "readOnlyRootFilesystem" and value:
            # The kubelet mounts no tmpfs anywhere; podman would add /tmp, /run, ...
            flags += ["--read-only", "--read-only-tmpfs=false"]
        elif key == "allowPrivilegeEscalation" and value is False:
            flags += ["--security-opt", "no-new-privileges"]
        elif key == "privileged":
            assert value is False, merged
        elif key == "capabilities":
            assert value == {"drop": ["ALL"]}, value
            flags += ["--cap-drop", "ALL"]
        elif key == "seccompProfile":
            # RuntimeDefault: podman's default profile, i.e. no seccomp flag at all.
            assert value == {"type": "RuntimeDefault"}, value
        else:
            raise AssertionError(f"securityContext.{key} is not translated for podman")
    assert user == NONROOT and group == NONROOT, merged
    return ["--user", f"{user}:{group}", *flags]


def common_flags():
    # No network but loopback, like a pod whose cluster cannot be reached. Low rlimits:
    # this kind of sandbox may not raise them to podman's defaults (a pod's runtime sets
    # none).
    return ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@unittest.skipUnless(IMAGE, "MAILOPS_IMAGE is not set: build the image with tools/image/build")
class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pod, cls.container = chart_container()
        cls.flags = security_flags(cls.pod, cls.container) + common_flags()

    def test_the_image_holds_the_binary_and_user_names_only(self):
        config = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Config"]
        self.assertEqual(config["User"], f"{NONROOT}:{NONROOT}")
        self.assertEqual(config["Entrypoint"], ["/mailops"])
        self.assertEqual(config["Cmd"], ["run"])
        self.assertEqual(sorted(config["ExposedPorts"]), ["8080/tcp", "9443/tcp"])
        created = podman("create", IMAGE).stdout.strip()
        try:
            with tempfile.TemporaryDirectory() as scratch:
                archive = Path(scratch) / "fs.tar"
                podman("export", "--output", str(archive), created)
                names = subprocess.run(
                    ["tar", "-tf", str(archive)], capture_output=True, text=True, check=True
                ).stdout.split()
        finally:
            podman("rm", created)
        files = sorted(n.lstrip("./") for n in names if not n.endswith("/"))
        # podman adds empty mount points for what it bind-mounts at run time.
        files = [f for f in files if f not in ("etc/hostname", "etc/hosts", "etc/resolv.conf", "run/.containerenv")]
        self.assertEqual(files, ["etc/group", "etc/passwd", "mailops"])

    def test_check_on_the_examples_succeeds_in_the_image(self):
        done = podman(
            "run", "--rm", *self.flags,
            "--volume", f"{ROOT / 'examples'}:/examples:ro",
            IMAGE, "check", "/examples",
            check=False,
        )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn(" 0 problems", done.stdout)

    def test_run_answers_healthz_with_no_cluster_reachable(self):
        with tempfile.TemporaryDirectory() as scratch:
            account = Path(scratch) / "serviceaccount"
            account.mkdir()
            # What the kubelet mounts for the pod's ServiceAccount; any CA will do, the
            # API server at KUBERNETES_SERVICE_HOST does not exist.
            (account / "token").write_text("not-a-real-token")
            (account / "namespace").write_text("mailops-system")
            (account / "ca.crt").write_text(any_ca_certificate())
            for f in account.iterdir():
                f.chmod(0o444)
            account.chmod(0o555)
            Path(scratch).chmod(0o755)
            env = []
            for item in self.container["env"]:
                value = item.get("value")
                if value is None:  # the downward API
                    value = {"metadata.name": "mailops-0", "metadata.namespace": "mailops-system"}[
                        item["valueFrom"]["fieldRef"]["fieldPath"]
                    ]
                env += ["--env", f"{item['name']}={value}"]
            env += ["--env", "KUBERNETES_SERVICE_HOST=10.96.0.1", "--env", "KUBERNETES_SERVICE_PORT=443"]
            started = podman(
                "run", "--detach", *self.flags, *env,
                "--volume", f"{account}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
                IMAGE, *self.container["args"],
            )
            name = started.stdout.strip()
            try:
                self.probe_like_the_kubelet(name)
            finally:
                podman("rm", "--force", name, check=False)

    def probe_like_the_kubelet(self, name):
        probe = self.container["livenessProbe"]
        port = {p["name"]: p["containerPort"] for p in self.container["ports"]}[probe["httpGet"]["port"]]
        self.assertEqual(probe["httpGet"]["path"], "/healthz")
        wait_for_log(name, "serving /metrics, /healthz and /readyz")
        wait_for_log(name, "cannot read the Kubernetes API; retrying")
        pid = podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
        healthz = get_in_netns(pid, port, "/healthz", probe["timeoutSeconds"])
        self.assertEqual(healthz, "200", podman("logs", name).stderr)
        readiness = self.container["readinessProbe"]["httpGet"]
        self.assertEqual(get_in_netns(pid, port, readiness["path"], 2), "503")
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
        self.assertEqual(state["Status"], "running", state)


def any_ca_certificate():
    """A CA certificate to stand for the cluster's: one from the host's trust store."""
    for path in sorted(Path("/etc/ssl/certs").glob("*.pem")):
        return path.read_text()
    raise AssertionError("no certificate in /etc/ssl/certs (ca-certificates)")


def wait_for_log(name, line, limit=60):
    """Follow the container's log until `line` appears (the log says so, not a clock);
    the follower is killed after `limit` seconds if it never does."""
    follow = subprocess.Popen(
        ["podman", "--root", str(STORAGE / "root"), "--runroot", str(STORAGE / "run"),
         "logs", "--follow", name],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    guard = threading.Timer(limit, follow.kill)
    guard.start()
    try:
        for text in follow.stdout:
            if line in text:
                return
        raise AssertionError(f"no {line!r} in the log (the container stopped, or {limit} s passed)")
    finally:
        guard.cancel()
        follow.kill()
        follow.wait()


def get_in_netns(pid, port, path, timeout):
    """The status of `GET path` from inside the pod's network namespace, as the kubelet
    reaches the pod's IP."""
    done = subprocess.run(
        ["nsenter", "--target", pid, "--net", "curl", "--silent", "--output", "/dev/null",
         "--max-time", str(timeout), "--write-out", "%{http_code}",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=30,
    )
    return done.stdout.strip()
