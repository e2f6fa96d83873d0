#!/usr/bin/env python3
"""Time from a device's third failed sync being acknowledged to its alert line on the
runner's stdout, with no webhook, with a healthy webhook receiver, and with one that
accepts connections and never answers. A slow webhook must not delay detection or the
other channels.

    python3 scripts/load/alert-latency.py [DEVICES]     # needs target/release/pisync-local

Prints the median and the 95th percentile per setup, in milliseconds.
"""
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

RUNNER = os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "pisync-local")


def healthy_receiver():
    class Ok(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook"


def hanging_receiver():
    """Accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    held = []

    def accept():
        while True:
            conn, _ = listener.accept()
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/hook"


def measure(devices, webhook):
    data = tempfile.mkdtemp()
    args = [RUNNER, "--addr", "127.0.0.1:0", "--data-dir", data]
    if webhook:
        args += ["--webhook-url", webhook]
    runner = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base = runner.stdout.readline().split()[-1]
    runner.stdout.readline()  # the dashboard link
    alerts = {}

    def read_alerts():
        for line in runner.stdout:
            try:
                notice = json.loads(line)
            except ValueError:
                continue
            if notice.get("type") == "device.repeated_sync_failures":
                alerts[notice["device_id"]] = time.monotonic()

    threading.Thread(target=read_alerts, daemon=True).start()
    acknowledged = {}
    for d in range(devices):
        device = f"latency-{d:04}"
        token = subprocess.check_output([RUNNER, "token", "device", device, "--data-dir", data], text=True).strip()
        for minute in range(3):
            body = json.dumps({
                "device_id": device, "timestamp": f"2026-11-30T10:{minute:02}:00Z",
                "total_files_synced": 1, "total_errors": 2, "internet_speed": 1.5,
            }).encode()
            request = urllib.request.Request(f"{base}/sync-event", data=body, method="POST", headers={
                "content-type": "application/json", "authorization": f"Bearer {token}"})
            urllib.request.urlopen(request).read()
        acknowledged[device] = time.monotonic()
    deadline = time.monotonic() + 30
    while len(alerts) < devices and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.terminate()
    runner.wait()
    latencies = sorted((alerts[d] - t) * 1000 for d, t in acknowledged.items() if d in alerts)
    missing = devices - len(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan")
    return statistics.median(latencies) if latencies else float("nan"), p95, missing


def main():
    devices = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    print(f"| webhook | alert line after the third failure: median ms | p95 ms | alerts missing (of {devices}) |")
    print("| --- | --- | --- | --- |")
    for name, webhook in [("none", None), ("healthy receiver", healthy_receiver()), ("receiver that never answers", hanging_receiver())]:
        median, p95, missing = measure(devices, webhook)
        print(f"| {name} | {median:.1f} | {p95:.1f} | {missing} |")


if __name__ == "__main__":
    main()
