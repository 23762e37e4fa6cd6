"""Drive Portico's Consul-compatible API with python-consul (Debian's python3-consul, 0.7.x).

Usage: python-consul-client.py HOST PORT TOKEN SERVICE_NAME

Registers an instance of SERVICE_NAME with a TTL check, passes the TTL, reads the service back
through the health and catalog endpoints, waits in a blocking query that a change wakes, puts the
instance in maintenance, deregisters it, and prints one JSON summary on stdout. Any exception fails
the run (exit status 1, traceback on stderr).

python-consul 0.7 sends the token as ?token= on service registration and on catalog and health
reads, but none at all on the other agent calls (services, self, check.ttl_*, service.maintenance,
service.deregister; the last two kinds it also sends as GET, as Consul before 1.0 accepted). A server
that enforces tokens, like a Consul agent with default-deny ACLs, refuses those; the script shows
that, then adds the token to the client's HTTP session, the usual workaround.
"""

import json
import sys
import threading
import time

import consul


def main():
    host, port, token, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    instance_id = name + "-1"
    check_id = "service:" + instance_id
    client = consul.Consul(host=host, port=port, token=token)
    summary = {}

    summary["registered"] = client.agent.service.register(
        name,
        service_id=instance_id,
        address="127.0.0.1",
        port=8080,
        tags=["v1", "python"],
        check=consul.Check.ttl("30s"),
    )
    # These reads carry the token as ?token=, as python-consul sends it.
    _, entries = client.health.service(name)
    summary["status_before_pass"] = [check["Status"] for check in entries[0]["Checks"] if check["CheckID"] == check_id]
    _, passing = client.health.service(name, passing=True)
    summary["passing_before_pass"] = len(passing)

    summary["tokenless"] = {}
    for call, attempt in (
        ("ttl_pass", lambda: client.agent.check.ttl_pass(check_id, "no token")),
        ("services", lambda: client.agent.services()),
    ):
        try:
            attempt()
            summary["tokenless"][call] = "accepted"
        except consul.ACLPermissionDenied as error:
            summary["tokenless"][call] = "refused: " + str(error)[:40]

    client.http.session.headers["X-Consul-Token"] = token
    summary["agent_services"] = client.agent.services().get(instance_id)
    summary["ttl_pass"] = client.agent.check.ttl_pass(check_id, "all good")

    index, passing = client.health.service(name, passing=True)
    summary["passing_after_pass"] = [
        {
            "node": entry["Node"]["Node"],
            "id": entry["Service"]["ID"],
            "address": entry["Service"]["Address"],
            "port": entry["Service"]["Port"],
            "tags": entry["Service"]["Tags"],
            "checks": {check["CheckID"]: [check["Status"], check["Output"]] for check in entry["Checks"]},
        }
        for entry in passing
    ]

    _, catalog = client.catalog.service(name)
    summary["catalog"] = [
        {key: entry[key] for key in ("ServiceID", "ServiceName", "ServiceAddress", "ServicePort", "ServiceTags")} for entry in catalog
    ]
    _, tagged = client.catalog.service(name, tag="python")
    _, untagged = client.catalog.service(name, tag="nope")
    summary["catalog_by_tag"] = [len(tagged), len(untagged)]
    _, services = client.catalog.services()
    summary["catalog_services"] = services.get(name)

    # A blocking query at the current index, woken by a second client turning the check to warning.
    def change():
        time.sleep(0.3)
        other = consul.Consul(host=host, port=port, token=token)
        other.http.session.headers["X-Consul-Token"] = token
        other.agent.check.ttl_warn(check_id, "slow")

    changer = threading.Thread(target=change)
    started = time.monotonic()
    changer.start()
    new_index, entries = client.health.service(name, index=index, wait="5s")
    elapsed = time.monotonic() - started
    changer.join()
    summary["blocking"] = {
        "index_before": int(index),
        "index_after": int(new_index),
        "seconds": round(elapsed, 3),
        "status": [check["Status"] for check in entries[0]["Checks"] if check["CheckID"] == check_id],
    }

    summary["maintenance"] = client.agent.service.maintenance(instance_id, "true", "python upgrade")
    _, entries = client.health.service(name)
    summary["maintenance_checks"] = [
        [check["CheckID"], check["Status"], check["Notes"]] for check in entries[0]["Checks"] if check["CheckID"].startswith("_service_maintenance:")
    ]
    client.agent.service.maintenance(instance_id, "false")

    summary["deregistered"] = client.agent.service.deregister(instance_id)
    _, entries = client.health.service(name)
    summary["after_deregister"] = len(entries)
    summary["datacenter"] = client.agent.self()["Config"]["Datacenter"]
    summary["leader"] = client.status.leader()

    print(json.dumps(summary))


if __name__ == "__main__":
    main()
