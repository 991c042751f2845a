"""deploy/k8s, rendered and validated: python test.py BIN_DIR.

Renders every overlay (and the prometheus-adapter rule) with `kubectl
kustomize`, validates every object against the Kubernetes 1.30 schemas
(kubernetes-validate, strict), and checks what the manifests promise: each
worker id of an overlay's plan has a Deployment, a headless Service, a
PodDisruptionBudget and a HorizontalPodAutoscaler that match one another;
the router is given every worker's Service; every Deployment serves TLS
from the Secret moe-tls and probes over it; the plan ConfigMap is the plan;
the network policies are there; and the committed workers/ folders are
what `moe-plan --emit-kustomize` writes for their plans today.
Exits 77 (skipped) without kubectl, except under CI=true.
"""

import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import kubernetes_validate
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(ROOT, "deploy", "k8s")
KUBERNETES_VERSION = "1.30"
# Each overlay and the plan its workers/ Component was written from.
OVERLAYS = {
    "cpu-demo": "deploy/compose/plan.json",
    "gpu-skywork-8x4090": "docs/examples/skywork-moe-8x4090-plan.json",
}
NETWORK_POLICIES = {
    "moe-deny-ingress",
    "moe-gateway-from-anywhere",
    "moe-router-from-gateway",
    "moe-workers-from-router",
    "moe-metrics-from-prometheus",
}
BIN_DIR = ""


def render(directory):
    output = subprocess.run(
        ["kubectl", "kustomize", directory], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def by_kind_and_name(objects):
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


class RenderedManifestsTest(unittest.TestCase):
    def validate_all(self, objects):
        for obj in objects:
            name = f'{obj["kind"]}/{obj["metadata"]["name"]}'
            with self.subTest(object=name):
                try:
                    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
                except kubernetes_validate.ValidationError as error:
                    self.fail(f"{name}: {error.message} at {list(error.path)}")

    def test_prometheus_adapter_rule(self):
        objects = render(os.path.join(K8S, "prometheus-adapter"))
        self.validate_all(objects)
        config = yaml.safe_load(objects[0]["data"]["config.yaml"])
        names = [rule["name"]["as"] for rule in config["rules"]]
        self.assertIn("moe_worker_queue_wait_seconds_mean", names)

    def test_overlays(self):
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                self.check_overlay(overlay)

    def check_overlay(self, overlay):
        objects = render(os.path.join(K8S, "overlays", overlay))
        self.validate_all(objects)
        for obj in objects:
            if obj["kind"] != "Namespace":
                self.assertEqual(obj["metadata"].get("namespace"), "moe-serve")
        objects = by_kind_and_name(objects)
        with open(os.path.join(K8S, "overlays", overlay, "workers", "plan.json")) as f:
            plan_text = f.read()
        plan = json.loads(plan_text)

        plan_maps = [o for (kind, name), o in objects.items()
                     if kind == "ConfigMap" and name.startswith("moe-plan-")]
        self.assertEqual(len(plan_maps), 1)
        self.assertEqual(json.loads(plan_maps[0]["data"]["plan.json"]), plan)
        plan_map = plan_maps[0]["metadata"]["name"]

        # Every Deployment serves TLS with the Secret moe-tls and probes its
        # health over it.
        for (kind, name), obj in objects.items():
            if kind != "Deployment":
                continue
            pod = obj["spec"]["template"]["spec"]
            self.assertIn({"name": "tls", "secret": {"secretName": "moe-tls"}},
                          pod["volumes"], name)
            container = pod["containers"][0]
            for flag in ("--tls-cert=/etc/moe/tls/tls.pem",
                         "--tls-key=/etc/moe/tls/tls.key",
                         "--tls-ca=/etc/moe/tls/ca.pem"):
                self.assertIn(flag, container["args"], name)
            self.assertNotIn("--insecure", container["args"], name)
            probe = container["readinessProbe"]["exec"]["command"]
            self.assertIn("/etc/moe/tls/ca.pem", probe, name)

        # Every Deployment reads its settings from the one moe-config.
        config_maps = [name for (kind, name) in objects
                       if kind == "ConfigMap" and name.startswith("moe-config-")]
        self.assertEqual(len(config_maps), 1)
        for (kind, name), obj in objects.items():
            if kind == "Deployment":
                container = obj["spec"]["template"]["spec"]["containers"][0]
                self.assertIn({"configMapRef": {"name": config_maps[0]}},
                              container["envFrom"], name)

        router = objects[("Deployment", "moe-router")]["spec"]["template"]["spec"]
        workers_flags = [a for a in router["containers"][0]["args"]
                         if a.startswith("--workers=")]
        self.assertEqual(len(workers_flags), 1)
        expected = ",".join(f'{w["id"]}=dns:///moe-worker-{w["id"]}:17011'
                            for w in plan["workers"])
        self.assertEqual(workers_flags[0], "--workers=" + expected)
        self.assertEqual(router["volumes"][1]["configMap"]["name"], plan_map)

        for worker in plan["workers"]:
            name = "moe-worker-" + worker["id"]
            for kind in ("Deployment", "Service", "PodDisruptionBudget",
                         "HorizontalPodAutoscaler"):
                self.assertIn((kind, name), objects, f"{overlay}: {kind} {name}")
            deployment = objects[("Deployment", name)]
            pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
            selector = deployment["spec"]["selector"]["matchLabels"]
            self.assertLessEqual(selector.items(), pod_labels.items())
            self.assertEqual(pod_labels["moe-serve/worker-id"], worker["id"])
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            self.assertIn("--worker-id=" + worker["id"], container["args"])
            # The router (serving with the cluster's certificate) may load
            # and unload experts.
            self.assertIn("--admin-identities=moe-cluster,admin", container["args"])
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                command = container[probe]["exec"]["command"]
                self.assertEqual(command[:3], ["moe-cli", "--address", "127.0.0.1:17011"])
                self.assertEqual(command[-1], "health")
            volumes = deployment["spec"]["template"]["spec"]["volumes"]
            self.assertIn({"name": "plan", "configMap": {"name": plan_map}}, volumes)

            service = objects[("Service", name)]["spec"]
            self.assertEqual(service["clusterIP"], "None")
            self.assertEqual(service["selector"], selector)
            budget = objects[("PodDisruptionBudget", name)]["spec"]
            self.assertEqual(budget["selector"]["matchLabels"], selector)
            autoscaler = objects[("HorizontalPodAutoscaler", name)]["spec"]
            self.assertEqual(autoscaler["scaleTargetRef"],
                             {"apiVersion": "apps/v1", "kind": "Deployment",
                              "name": name})
            self.assertEqual(autoscaler["metrics"][0]["pods"]["metric"]["name"],
                             "moe_worker_queue_wait_seconds_mean")

        policies = {name for (kind, name) in objects if kind == "NetworkPolicy"}
        self.assertEqual(policies, NETWORK_POLICIES)
        if overlay.startswith("gpu"):
            config = objects[("ConfigMap", config_maps[0])]["data"]
            self.assertEqual(config["MOE_ROUTER_KV_CACHE_MB"], "15360")
            for worker in plan["workers"]:
                container = objects[("Deployment", "moe-worker-" + worker["id"])][
                    "spec"]["template"]["spec"]["containers"][0]
                self.assertEqual(container["resources"]["limits"]["nvidia.com/gpu"], 1)
                self.assertIn("--device=0", container["args"])
                self.assertIn("--worker-id=" + worker["id"], container["args"])

    def test_workers_are_what_moe_plan_writes(self):
        for overlay, plan in OVERLAYS.items():
            with self.subTest(overlay=overlay), tempfile.TemporaryDirectory() as out:
                subprocess.run(
                    [os.path.join(BIN_DIR, "moe-plan"), "--check",
                     os.path.join(ROOT, plan), "--emit-kustomize", out],
                    check=True, capture_output=True)
                committed = os.path.join(K8S, "overlays", overlay, "workers")
                self.assertEqual(sorted(os.listdir(out)), sorted(os.listdir(committed)))
                _, mismatch, errors = filecmp.cmpfiles(
                    out, committed, os.listdir(out), shallow=False)
                self.assertEqual(mismatch + errors, [],
                                 f"{committed} differs from moe-plan's: rerun "
                                 f"the command in its kustomization.yaml")


if __name__ == "__main__":
    BIN_DIR = sys.argv.pop(1)
    if shutil.which("kubectl") is None:
        if os.environ.get("CI") == "true":
            print("FAIL: no kubectl (scripts/install-deps.sh --test installs it)")
            sys.exit(1)
        print("skipped: no kubectl (scripts/install-deps.sh --test installs it)")
        sys.exit(77)
    unittest.main()
