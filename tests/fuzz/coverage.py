"""Operation coverage of one schemathesis run, from its JSON report (`--report json`).

Prints how many operations were exercised and, per operation and phase, how many
schema-valid requests the server accepted, refused as unreachable (404) or as a
conflict, or rejected; then the operations no valid request ever got through.
"""
import json
import sys

report = json.load(open(sys.argv[1]))
ops = report["operations"]
rates = report.get("valid_rates", {})
phases = [p for p, v in report["phases"].items() if v["status"] != "skip"]
print(f"Operation coverage: {ops['tested']} tested of {ops['selected']} selected "
      f"({ops['total']} in the spec); phases run: {', '.join(phases)}")
never = []
width = max((len(name) for name in rates), default=10)
for name in sorted(rates):
    cells, accepted = [], 0
    for phase, r in rates[name].items():
        accepted += r["accepted"]
        cells.append(f"{phase} {r['accepted']}/{r['unreachable']}/{r['conflicts']}/{r['rejected']}")
    print(f"  {name:<{width}}  {'  '.join(cells)}")
    if accepted == 0:
        never.append(name)
print("  (per phase: accepted/unreachable/conflict/rejected valid requests)")
print(f"Reached with accepted data: {len(rates) - len(never)} of {len(rates)} operations")
for name in never:
    print(f"  never accepted: {name}")
