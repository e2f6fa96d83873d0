"""Issues one device token per simulated load device through the API (admin token),
on one keep-alive connection, and prints "device token" lines.

    python3 issue-tokens.py HOST:PORT ADMIN_TOKEN RUN_ID THREADS DEVICES_PER_THREAD [PREFIX]
"""
import http.client
import json
import sys

host, admin, run_id, threads, per_thread = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
prefix = sys.argv[6] if len(sys.argv) > 6 else "load"
conn = http.client.HTTPConnection(host, timeout=10)
for thread in range(threads):
    for i in range(per_thread):
        device = f"{prefix}-{run_id}-{thread}-{i}"
        conn.request("POST", f"/device/{device}/credentials", headers={"Authorization": f"Bearer {admin}"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 201:
            sys.exit(f"issuing {device}: {response.status} {body!r}")
        print(device, json.loads(body)["token"])
