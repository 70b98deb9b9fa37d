#!/usr/bin/env python3
"""The `kubectl ds status` part of the benchmark (issue 12), run by `scripts/bench status`.

On the benchmark cluster, against the same cluster state `scripts/bench run` measures:
  1. first screen: the time from start until status has printed its first observation of every
     node (-o json, one NodeChange per node; the burst ends when 2 s pass without a line),
     against the wall time of `explain NAME -o table` run the same way, alternating, N runs each,
     KWOK paused (as `scripts/bench run` times commands);
  2. idle: status kept running 60 s after its first screen with KWOK resumed (the simulated
     kubelets' node heartbeats go on: every node's status is written every 1-10 min), its CPU
     share of one core over that time;
  3. a rolling update of every DaemonSet pod (a new image), followed to the end; then the last
     NodeChange of every node is compared with the pods the cluster really has: a node whose last
     reported pod, state or revision differs is a missed change;
  4. peak RSS (VmHWM) of that status process over 1-3, against explain's peak RSS.
Prints one JSON object with the figures on stdout (only those of 1 when
KDS_BENCH_STATUS_FIRST_SCREEN_ONLY is set).
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

BIN, NS, DS, KWOK_PID, RUNS, IMAGE = sys.argv[1:7]
RUNS = int(RUNS)
KWOK_PID = int(KWOK_PID)
KUBECONFIG = os.environ["KUBECONFIG"]


def log(msg):
    print(f"bench: status: {msg}", file=sys.stderr, flush=True)


def kubectl(*args):
    return subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, *args], check=True,
                          capture_output=True, text=True).stdout


class Status:
    """A running `status -o json`, its lines with their arrival times."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([BIN, "status", DS, "-n", NS, "-o", "json", "--stuck-after", "24h"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []  # (seconds since start, parsed object)
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            t = time.monotonic() - self.t0
            try:
                obj = json.loads(line)
            except ValueError:
                obj = {"kind": "unparsed", "line": line}
            with self.lock:
                self.lines.append((t, obj))

    def first_screen(self, quiet=2.0, limit=120.0):
        """Seconds until the first burst of lines ended (the last line before `quiet` s of
        silence), and the number of lines in it."""
        while True:
            time.sleep(0.05)
            now = time.monotonic() - self.t0
            with self.lock:
                n = len(self.lines)
                last = self.lines[-1][0] if n else None
            if last is not None and now - last >= quiet:
                return last, n
            if now > limit or self.proc.poll() is not None:
                raise SystemExit(f"status printed no first screen within {limit} s (exit {self.proc.poll()}): "
                                 f"{self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        return code


def explain_run():
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", BIN, "explain", DS, "-n", NS, "-o", "table"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    rss = int(r.stderr.strip().splitlines()[-1]) / 1024
    return wall, rss


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def main():
    out = {}
    # 1. first screen against explain, alternating, KWOK paused.
    os.kill(KWOK_PID, signal.SIGSTOP)
    try:
        explain_runs, screen_runs, explain_rss = [], [], []
        explain_run()  # warm-up
        for i in range(RUNS):
            wall, rss = explain_run()
            explain_runs.append(wall)
            explain_rss.append(rss)
            s = Status()
            t, n = s.first_screen()
            s.stop()
            screen_runs.append(t)
            log(f"run {i + 1}/{RUNS}: explain {wall:.3f} s, status first screen {t:.3f} s ({n} lines)")
        out["explainSeconds"] = {"median": median(explain_runs), "min": min(explain_runs)}
        out["firstScreenSeconds"] = {"median": median(screen_runs), "min": min(screen_runs)}
        out["firstScreenLines"] = n
        out["explainPeakRssMB"] = median(explain_rss)
    finally:
        os.kill(KWOK_PID, signal.SIGCONT)
    if os.environ.get("KDS_BENCH_STATUS_FIRST_SCREEN_ONLY"):
        print(json.dumps(out))
        return

    # 2. idle, KWOK running.
    s = Status()
    s.first_screen()
    n_before = len(s.lines)
    c0, t0 = s.cpu_seconds(), time.monotonic()
    time.sleep(60)
    c1, t1 = s.cpu_seconds(), time.monotonic()
    out["idleCpuPercent"] = 100 * (c1 - c0) / (t1 - t0)
    out["idleLines"] = len(s.lines) - n_before
    out["rssAfterIdleMB"] = s.peak_rss_mb()
    log(f"idle 60 s: {out['idleCpuPercent']:.2f}% of a core, {out['idleLines']} lines, peak RSS {out['rssAfterIdleMB']:.0f} MB")

    # 3. a rolling update of every pod, followed.
    ds = json.loads(kubectl("get", "ds", DS, "-n", NS, "-o", "json"))
    container = ds["spec"]["template"]["spec"]["containers"][0]["name"]
    kubectl("set", "image", f"ds/{DS}", "-n", NS, f"{container}={IMAGE}")
    t_roll = time.monotonic()
    c_roll = s.cpu_seconds()
    log(f"rolling {DS} to {IMAGE}")
    while True:
        time.sleep(5)
        st = json.loads(kubectl("get", "ds", DS, "-n", NS, "-o", "json"))
        g, og = st["metadata"]["generation"], st["status"].get("observedGeneration", 0)
        d, u = st["status"].get("desiredNumberScheduled", 0), st["status"].get("updatedNumberScheduled", 0)
        a, unav = st["status"].get("numberAvailable", 0), st["status"].get("numberUnavailable", 0)
        pods = json.loads(kubectl("get", "pods", "-n", NS, "-l", f"app={DS}", "-o", "json"))["items"]
        # Done: every desired node has a pod of the new template and no old pod is left.
        old = [p for p in pods if p["spec"]["containers"][0]["image"] != IMAGE]
        # Scheduled but not Ready yet (the pods of the full nodes stay unscheduled: not counted).
        starting = [p for p in pods if p["spec"].get("nodeName") and not any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
        log(f"  {time.monotonic() - t_roll:.0f} s: updated {u}/{d}, available {a}, unavailable {unav}, old pods {len(old)}, starting {len(starting)}, status lines {len(s.lines)}")
        if og == g and u == d and not old and not starting:
            break
        if time.monotonic() - t_roll > 3600:
            raise SystemExit("the rollout did not finish in 60 min")
    out["rolloutSeconds"] = time.monotonic() - t_roll
    time.sleep(5)  # let the last changes reach status
    out["rolloutCpuSeconds"] = s.cpu_seconds() - c_roll
    out["peakRssMB"] = s.peak_rss_mb()
    code = s.stop()
    out["statusExitCode"] = code

    # 4. the last reported state of every node against the cluster's pods.
    pods = json.loads(kubectl("get", "pods", "-n", NS, "-l", f"app={DS}", "-o", "json"))["items"]
    last = {}
    changes = 0
    for _, obj in s.lines:
        if obj.get("kind") == "NodeChange":
            changes += 1
            last[obj["node"]] = obj
    new_rev = max((o.get("revision") or 0) for o in last.values())
    missed = []
    ready_new = 0
    for p in pods:
        node = p["spec"].get("nodeName")
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
        if p["metadata"].get("deletionTimestamp"):
            continue
        if node is None:
            # Unscheduled (full node): the pod's node is its affinity's; match by pod name.
            seen = [o for o in last.values() if o.get("pod") == p["metadata"]["name"]]
            if not seen:
                missed.append(f"pod {p['metadata']['name']} (unscheduled) never reported")
            continue
        o = last.get(node)
        want_state = "Available" if ready else None
        if o is None or o.get("pod") != p["metadata"]["name"] or o.get("revision") != new_rev \
                or (want_state and o.get("to") != want_state):
            missed.append(f"{node}: cluster has {p['metadata']['name']} ready={ready}, status last said {o}")
        elif ready:
            ready_new += 1
    out["changes"] = changes
    out["podsNow"] = len(pods)
    out["nodesAvailableOnNewRevision"] = ready_new
    out["missed"] = len(missed)
    for m in missed[:10]:
        log(f"missed: {m}")
    print(json.dumps(out))


main()
