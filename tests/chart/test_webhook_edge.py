"""The webhook's edge in the chart: its connection cap, client authentication of the API
server (a CA from a ConfigMap or Secret, mounted and passed to the operator) and the
optional NetworkPolicy admitting only given CIDRs to the webhook port."""

import unittest

import helm_python as helm

from test_chart import CHART, NAMESPACE, args_after, by_kind, container, one, render

CA_FILE = "/etc/mailops/webhook-client-ca/ca.crt"
API_SERVER = "kube-apiserver-webhook-client"


def pod_spec(objects):
    return one(objects, "Deployment")["spec"]["template"]["spec"]


class ClientAuthTest(unittest.TestCase):
    def test_off_by_default_nothing_is_mounted(self):
        objects, _ = render()
        main = container(objects)
        self.assertNotIn("--webhook-client-ca-file", main["args"])
        self.assertNotIn("volumeMounts", main)
        self.assertNotIn("volumes", pod_spec(objects))
        self.assertEqual(args_after(main["args"], "--webhook-max-connections"), "16")

    def test_a_ca_from_a_config_map_is_mounted_and_required_with_its_names(self):
        objects, _ = render({"webhook": {"maxConnections": 32, "clientAuth": {
            "enabled": True, "caConfigMap": "apiserver-webhook-client-ca",
            "allowedNames": [API_SERVER, "kube-apiserver-2"]}}})
        main = container(objects)
        args = main["args"]
        self.assertEqual(args_after(args, "--webhook-client-ca-file"), CA_FILE)
        names = [args[i + 1] for i, a in enumerate(args) if a == "--webhook-client-name"]
        self.assertEqual(names, [API_SERVER, "kube-apiserver-2"])
        self.assertEqual(args_after(args, "--webhook-max-connections"), "32")
        self.assertEqual(main["volumeMounts"], [{"name": "webhook-client-ca",
                                                 "mountPath": "/etc/mailops/webhook-client-ca",
                                                 "readOnly": True}])
        self.assertEqual(pod_spec(objects)["volumes"], [{"name": "webhook-client-ca", "configMap": {
            "name": "apiserver-webhook-client-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}])

    def test_a_ca_from_a_secret_under_another_key(self):
        objects, _ = render({"webhook": {"clientAuth": {
            "enabled": True, "caSecret": "webhook-client", "caKey": "ca.pem"}}})
        args = container(objects)["args"]
        self.assertEqual(args_after(args, "--webhook-client-ca-file"), "/etc/mailops/webhook-client-ca/ca.pem")
        self.assertNotIn("--webhook-client-name", args)
        self.assertEqual(pod_spec(objects)["volumes"], [{"name": "webhook-client-ca", "secret": {
            "secretName": "webhook-client", "items": [{"key": "ca.pem", "path": "ca.pem"}]}}])

    def test_exactly_one_source_of_the_ca(self):
        for source in ({}, {"caConfigMap": "a", "caSecret": "b"}):
            with self.subTest(source), self.assertRaisesRegex(helm.HelmError, "exactly one"):
                render({"webhook": {"clientAuth": {"enabled": True, **source}}})

    def test_without_the_webhook_client_auth_is_ignored(self):
        objects, _ = render({"webhook": {"enabled": False, "clientAuth": {"enabled": True}}})
        self.assertNotIn("volumes", pod_spec(objects))

    def test_bad_values_are_rejected_by_the_schema(self):
        bad = {
            "no connections": ({"webhook": {"maxConnections": 0}}, "maxConnections"),
            "names as a string": ({"webhook": {"clientAuth": {"allowedNames": API_SERVER}}}, "allowedNames"),
            "a path as key": ({"webhook": {"clientAuth": {"caKey": "../ca.crt"}}}, "caKey"),
            "typo": ({"webhook": {"clientAuth": {"caConfigmap": "x"}}}, "caConfigmap"),
        }
        with helm.Chart.load(CHART) as chart:
            for label, (values, field) in bad.items():
                with self.subTest(label), self.assertRaises(helm.HelmValuesError) as raised:
                    chart.validate_schema(values)
                self.assertIn(field, str(raised.exception))


class NetworkPolicyTest(unittest.TestCase):
    def test_off_by_default(self):
        objects, _ = render()
        self.assertEqual(by_kind(objects, "NetworkPolicy"), [])

    def test_the_webhook_port_only_from_the_given_cidrs_and_metrics_from_its_peers(self):
        prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        objects, _ = render({"networkPolicy": {"enabled": True,
                                               "webhookCIDRs": ["10.0.0.0/24", "192.168.1.10/32"],
                                               "metricsFrom": [prometheus]}})
        policy = one(objects, "NetworkPolicy")
        self.assertEqual(policy["metadata"]["namespace"], NAMESPACE)
        self.assertEqual(policy["spec"]["podSelector"]["matchLabels"],
                         one(objects, "Deployment")["spec"]["selector"]["matchLabels"])
        self.assertEqual(policy["spec"]["policyTypes"], ["Ingress"])
        self.assertEqual(policy["spec"]["ingress"], [
            {"ports": [{"port": "webhook", "protocol": "TCP"}],
             "from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}, {"ipBlock": {"cidr": "192.168.1.10/32"}}]},
            {"ports": [{"port": "http", "protocol": "TCP"}], "from": [prometheus]},
        ])
        # The named ports are the container's.
        ports = {p["name"] for p in container(objects)["ports"]}
        self.assertLessEqual({"webhook", "http"}, ports)

    def test_without_metrics_peers_port_8080_stays_open(self):
        objects, _ = render({"networkPolicy": {"enabled": True, "webhookCIDRs": ["10.0.0.0/8"]}})
        metrics = one(objects, "NetworkPolicy")["spec"]["ingress"][1]
        self.assertEqual(metrics, {"ports": [{"port": "http", "protocol": "TCP"}]})

    def test_the_webhook_needs_cidrs(self):
        with self.assertRaisesRegex(helm.HelmError, "webhookCIDRs"):
            render({"networkPolicy": {"enabled": True}})
        objects, _ = render({"webhook": {"enabled": False}, "networkPolicy": {"enabled": True}})
        ingress = one(objects, "NetworkPolicy")["spec"]["ingress"]
        self.assertEqual([rule["ports"][0]["port"] for rule in ingress], ["http"])

    def test_bad_values_are_rejected_by_the_schema(self):
        bad = {
            "a bare address": ({"networkPolicy": {"webhookCIDRs": ["10.0.0.1"]}}, "webhookCIDRs"),
            "peers as strings": ({"networkPolicy": {"metricsFrom": ["10.0.0.0/8"]}}, "metricsFrom"),
        }
        with helm.Chart.load(CHART) as chart:
            for label, (values, field) in bad.items():
                with self.subTest(label), self.assertRaises(helm.HelmValuesError) as raised:
                    chart.validate_schema(values)
                self.assertIn(field, str(raised.exception))

    def test_lint_passes_with_everything_on(self):
        values = {"webhook": {"clientAuth": {"enabled": True, "caSecret": "c", "allowedNames": [API_SERVER]}},
                  "networkPolicy": {"enabled": True, "webhookCIDRs": ["10.0.0.0/24"]}}
        report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
        self.assertEqual(report["errors"], [], report)


if __name__ == "__main__":
    unittest.main()
