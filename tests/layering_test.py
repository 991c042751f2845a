#!/usr/bin/env python3
"""The folders' include rules (docs/ARCHITECTURE.md): every quoted include of
the project's C++ code points from a folder to one it may use, and those
rules have no cycle.

usage: layering_test.py SOURCE_DIR
"""

import os
import re
import sys

# Folder -> the folders its files may include from (besides itself). Keep in
# step with the table in docs/ARCHITECTURE.md.
CORE = ["core/util", "core/model", "core/tokenizer", "core/kernels",
        "core/placement", "core/cuda"]
ALLOWED = {
    "core/util": [],
    "core/model": ["core/util"],
    "core/tokenizer": ["core/model", "core/util"],
    "core/kernels": ["core/model", "core/util"],
    "core/placement": ["core/util"],
    "core/cuda": [],
    "protos": [],
    "rpc": ["protos", "core/model", "core/util"],
    "metrics": ["core/util"],
    "link/cuda": ["core/cuda"],
    "link": ["link/cuda", "rpc", "protos", "core/util", "core/cuda"],
    "engine/cuda": ["core/cuda"],
    "engine": ["engine/cuda", "core/kernels", "core/model", "core/util",
               "core/cuda"],
    "router_service": ["engine", "link", "rpc", "metrics", "protos"] + CORE,
    "expert_worker/cuda": ["core/cuda"],
    "expert_worker": ["expert_worker/cuda", "link", "rpc", "metrics", "protos"] + CORE,
    "gateway": ["rpc", "metrics", "protos", "core/tokenizer", "core/model", "core/util"],
    "sdk": ["rpc", "protos", "core/util"],
}
SERVICES = ["router_service", "expert_worker", "gateway", "sdk"]
LOWER = list(ALLOWED)
TOOLS = ["tools/moe_admin", "tools/moe_bench", "tools/moe_generate", "tools/moe_make_model",
         "tools/moe_plan", "tools/moe_quantize", "tools/moe_upcycle"]
for tool in TOOLS:
    ALLOWED[tool] = LOWER
ALLOWED["tests"] = LOWER + TOOLS

SOURCE_SUFFIXES = (".cc", ".h", ".cu", ".cuh")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder_of(path):
    """The declared folder `path` lies in (the longest match), or None."""
    if path.startswith("moe/v1/"):  # generated from protos/moe/v1
        return "protos"
    best = None
    for folder in ALLOWED:
        if path.startswith(folder + "/") and (
                best is None or len(folder) > len(best)):
            best = folder
    return best


def check_acyclic():
    """Fails with the cycle's folders if the rules themselves have one."""
    state = {}

    def visit(folder, trail):
        if state.get(folder) == "done":
            return
        if state.get(folder) == "open":
            cycle = trail[trail.index(folder):] + [folder]
            sys.exit("the include rules have a cycle: " + " -> ".join(cycle))
        state[folder] = "open"
        for used in ALLOWED[folder]:
            visit(used, trail + [folder])
        state[folder] = "done"

    for folder in ALLOWED:
        visit(folder, [])


def main():
    root = sys.argv[1]
    check_acyclic()
    top_folders = {folder.split("/")[0] for folder in ALLOWED}
    problems = []
    files = 0
    for top in sorted(top_folders):
        for directory, subdirs, names in os.walk(os.path.join(root, top)):
            subdirs.sort()
            for name in sorted(names):
                if not name.endswith(SOURCE_SUFFIXES):
                    continue
                path = os.path.relpath(os.path.join(directory, name), root)
                source = folder_of(path)
                if source is None:
                    problems.append(f"{path}: in no folder of the rules")
                    continue
                files += 1
                with open(os.path.join(root, path), encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        match = INCLUDE.match(line)
                        if not match:
                            continue
                        included = match.group(1)
                        if included.split("/")[0] not in top_folders | {"moe"}:
                            continue  # a library's header
                        target = folder_of(included)
                        if target is None:
                            problems.append(f"{path}:{number}: includes "
                                            f"{included}, in no folder")
                        elif target != source and target not in ALLOWED[source]:
                            problems.append(
                                f"{path}:{number}: {source}/ includes "
                                f"{included} from {target}/, which it may "
                                f"not use")
    # No service includes another, whatever the rules above come to say.
    for service in SERVICES:
        for other in SERVICES:
            if other != service and other in ALLOWED[service]:
                problems.append(f"the rules let {service}/ use {other}/")
    if files < 100:
        problems.append(f"only {files} files under {root}: wrong SOURCE_DIR?")
    for problem in problems:
        print(problem)
    print(f"{files} files checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
