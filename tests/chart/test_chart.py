"""The Helm chart, linted and rendered offline with Helm v4's own SDK (helm-python-sdk).

Run with `python -m pytest tests/chart` (or `python -m unittest discover tests/chart`);
`.ci/run` does it in a fresh venv.
"""

import re
import unittest
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "mailops"
RELEASE = "mailops"
NAMESPACE = "mailops-system"
WILDCARD = "*"
ALL_OPTIONAL = {"serviceMonitor": {"enabled": True}, "podDisruptionBudget": {"enabled": True}}


def render(values=None):
    """Render the chart; returns (objects, manifests by template path)."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    objects = []
    for path, text in manifests.items():
        if path.endswith(".txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects, manifests


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind):
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def named(objects, kind, name):
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def operator_role(objects):
    return named(objects, "ClusterRole", RELEASE)


def metrics_service(objects):
    return named(objects, "Service", f"{RELEASE}-metrics")


def args_after(args, flag):
    return args[args.index(flag) + 1]


def container(objects):
    deployment = one(objects, "Deployment")
    (main,) = deployment["spec"]["template"]["spec"]["containers"]
    return main


def rules_for(role, api_group, resource):
    return [
        r
        for r in role["rules"]
        if api_group in r.get("apiGroups", []) and resource in r.get("resources", [])
    ]


class LintTest(unittest.TestCase):
    def test_chart_lints_without_errors_in_strict_mode(self):
        for values in ({}, ALL_OPTIONAL):
            report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
            self.assertEqual(report["errors"], [], report)
            serious = [m for m in report["messages"] if m["severity"] >= 2]
            self.assertEqual(serious, [], report)

    def test_chart_metadata(self):
        with helm.Chart.load(CHART) as chart:
            self.assertEqual(chart.metadata["apiVersion"], "v2")
            self.assertEqual(chart.metadata["appVersion"], "0.1.0")
            crds = chart.crds
        self.assertEqual([c["name"] for c in crds], ["crds/mailops.dev.yaml"])
        docs = [d for d in yaml.safe_load_all(crds[0]["data"]) if d]
        self.assertEqual(
            sorted(d["metadata"]["name"] for d in docs),
            [
                "emailproviders.mailops.dev",
                "exchangeserviceaccounts.mailops.dev",
                "mailboxbindings.mailops.dev",
            ],
        )
        # The byte-for-byte comparison with the Rust types is tests/chart.rs.
        top_level = (ROOT / "crds" / "mailops.dev.yaml").read_text()
        self.assertEqual(crds[0]["data"], top_level)


class DefaultRenderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objects, cls.manifests = render()

    def test_expected_objects_and_no_optional_ones(self):
        kinds = sorted(o["kind"] for o in self.objects)
        self.assertEqual(
            kinds,
            sorted(
                [
                    "ClusterRole",  # the controllers
                    "ClusterRole",  # the webhook
                    "ClusterRole",  # `use` on service accounts, bound to nobody
                    "ClusterRole",  # aggregated into the built-in view, edit, admin
                    "ClusterRole",  # aggregated into the built-in edit, admin
                    "ClusterRoleBinding",
                    "ClusterRoleBinding",
                    "Deployment",
                    "Role",  # leader election
                    "Role",  # the webhook's certificate Secret
                    "RoleBinding",
                    "RoleBinding",
                    "Secret",  # filled by the operator
                    "Service",  # metrics
                    "Service",  # webhook
                    "ServiceAccount",
                    "ValidatingWebhookConfiguration",
                ]
            ),
        )

    def test_pod_runs_under_restricted_pod_security(self):
        pod = one(self.objects, "Deployment")["spec"]["template"]["spec"]
        self.assertIs(pod["securityContext"]["runAsNonRoot"], True)
        self.assertEqual(pod["securityContext"]["runAsUser"], 65532)
        self.assertEqual(pod["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"})
        sc = container(self.objects)["securityContext"]
        self.assertIs(sc["runAsNonRoot"], True)
        self.assertEqual(sc["runAsUser"], 65532)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
        self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"})
        self.assertNotIn("hostNetwork", pod)

    def test_probes_hit_the_http_port(self):
        main = container(self.objects)
        self.assertEqual(
            main["ports"],
            [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                {"name": "webhook", "containerPort": 9443, "protocol": "TCP"},
            ],
        )
        self.assertEqual(main["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "http"})
        self.assertEqual(main["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "http"})

    def test_args_env_and_resources(self):
        main = container(self.objects)
        self.assertEqual(
            main["args"],
            [
                "run", "--log-format", "text",
                "--login-failures-per-window", "3",
                "--login-failure-window-seconds", "1800",
                "--webhook-addr", "0.0.0.0:9443",
                "--webhook-service", "mailops-webhook",
                "--webhook-secret", "mailops-webhook-tls",
                "--webhook-configuration", "mailops",
                "--webhook-max-connections", "16",
            ],
        )
        env = {e["name"]: e for e in main["env"]}
        self.assertEqual(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name")
        self.assertEqual(
            env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace"
        )
        self.assertEqual(env["RUST_LOG"]["value"], "info")
        self.assertIn("requests", main["resources"])
        self.assertIn("memory", main["resources"]["limits"])
        self.assertEqual(main["image"], "ghcr.io/mailops/mailops:0.1.0")

    def test_no_proxy_is_set_unless_asked(self):
        names = {e["name"] for e in container(self.objects)["env"]}
        self.assertFalse(names & {"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"}, names)

    def test_proxy_values_and_extra_env_reach_the_container(self):
        from_secret = {"secretKeyRef": {"name": "egress", "key": "url"}}
        objects, _ = render({
            "proxy": {"https": "http://proxy.contoso.com:3128", "noProxy": ".contoso.local,10.0.0.0/8"},
            "extraEnv": [{"name": "ALL_PROXY_NOTE", "value": "x"}, {"name": "HTTP_PROXY", "valueFrom": from_secret}],
        })
        env = container(objects)["env"]
        by_name = {e["name"]: e for e in env}
        self.assertEqual(by_name["HTTPS_PROXY"]["value"], "http://proxy.contoso.com:3128")
        self.assertEqual(by_name["NO_PROXY"]["value"], ".contoso.local,10.0.0.0/8")
        self.assertEqual(by_name["HTTP_PROXY"]["valueFrom"], from_secret)
        self.assertEqual(by_name["ALL_PROXY_NOTE"]["value"], "x")
        self.assertEqual(len(env), len(by_name), "no variable twice")

    def test_every_object_has_the_standard_labels(self):
        for obj in self.objects:
            labels = obj["metadata"]["labels"]
            self.assertEqual(labels["app.kubernetes.io/name"], "mailops", obj["kind"])
            self.assertEqual(labels["app.kubernetes.io/instance"], RELEASE, obj["kind"])
            self.assertEqual(labels["app.kubernetes.io/version"], "0.1.0", obj["kind"])
            self.assertEqual(labels["app.kubernetes.io/managed-by"], "Helm", obj["kind"])
            if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"):
                self.assertEqual(obj["metadata"]["namespace"], NAMESPACE, obj["kind"])

    def test_selectors_pick_the_operator_pods(self):
        deployment = one(self.objects, "Deployment")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        service = metrics_service(self.objects)
        webhook = named(self.objects, "Service", "mailops-webhook")
        for chosen in (selector, service["spec"]["selector"], webhook["spec"]["selector"]):
            self.assertTrue(chosen)
            self.assertLessEqual(chosen.items(), pod_labels.items())
        self.assertEqual(
            service["spec"]["ports"],
            [{"name": "http-metrics", "port": 8080, "targetPort": "http", "protocol": "TCP"}],
        )

    def test_no_wildcards_anywhere_in_rbac(self):
        for role in by_kind(self.objects, "ClusterRole") + by_kind(self.objects, "Role"):
            for rule in role["rules"]:
                for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                    for value in rule.get(field, []):
                        self.assertNotIn(WILDCARD, value, f"{role['kind']} {rule}")

    def test_every_rbac_rule_carries_a_comment(self):
        for path, text in self.manifests.items():
            if "rbac" not in path and "clusterrole.yaml" not in path:
                continue
            lines = [line for line in text.splitlines() if line.strip()]
            for i, line in enumerate(lines):
                if line.lstrip().startswith("- apiGroups:"):
                    self.assertTrue(
                        lines[i - 1].lstrip().startswith("#"), f"{path}: no comment above {line!r}"
                    )

    def test_cluster_role_grants_only_what_controllers_use(self):
        role = operator_role(self.objects)
        granted = {}
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.setdefault((group, resource), set()).update(rule["verbs"])
        expected = {}
        # The controllers read the three kinds from watch caches: no `get`; only providers
        # and service accounts carry a finalizer, so bindings are not patched. Secrets are
        # watched as metadata and the referenced ones read with a `get`; so are ConfigMaps
        # (a provider's CA bundle), which are never written.
        for kind in ("emailproviders", "exchangeserviceaccounts", "mailboxbindings"):
            expected[("mailops.dev", kind)] = {"list", "watch"}
            expected[("mailops.dev", f"{kind}/status")] = {"patch"}
        for kind in ("emailproviders", "exchangeserviceaccounts"):
            expected[("mailops.dev", kind)].add("patch")
        expected[("", "secrets")] = {"get", "list", "watch", "patch"}
        expected[("", "configmaps")] = {"get", "list", "watch"}
        expected[("", "namespaces")] = {"list", "watch"}
        expected[("events.k8s.io", "events")] = {"create", "patch"}
        self.assertEqual(granted, expected)

    def test_bindings_name_the_operator_service_account(self):
        account = one(self.objects, "ServiceAccount")["metadata"]["name"]
        deployment = one(self.objects, "Deployment")
        self.assertEqual(deployment["spec"]["template"]["spec"]["serviceAccountName"], account)
        bound = set()
        for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
            for binding in by_kind(self.objects, kind):
                self.assertEqual(
                    binding["subjects"],
                    [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}],
                )
                self.assertEqual(binding["roleRef"]["kind"], role_kind)
                named(self.objects, role_kind, binding["roleRef"]["name"])
                bound.add((role_kind, binding["roleRef"]["name"]))
        roles = {(o["kind"], o["metadata"]["name"]) for o in self.objects if o["kind"] in ("Role", "ClusterRole")}
        # Every role is bound to the operator, except `use`, which is bound to nobody, and
        # the two the built-in roles aggregate.
        self.assertEqual(
            roles - bound,
            {
                ("ClusterRole", "mailops-serviceaccount-user"),
                ("ClusterRole", "mailops-view"),
                ("ClusterRole", "mailops-edit"),
            },
        )

    def test_leases_role_is_in_the_release_namespace(self):
        role = named(self.objects, "Role", "mailops-leader-election")
        self.assertEqual(role["metadata"]["namespace"], NAMESPACE)
        self.assertEqual(
            role["rules"],
            [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["get", "create", "update"],
                }
            ],
        )
        for binding in by_kind(self.objects, "RoleBinding"):
            self.assertEqual(binding["metadata"]["namespace"], NAMESPACE)

    def test_notes_say_what_to_apply_next(self):
        notes = self.manifests["mailops/templates/NOTES.txt"]
        for needle in ("EmailProvider", "ExchangeServiceAccount", "MailboxBinding",
                       "kubectl get mailops", "kubectl apply --server-side -f crds/"):
            self.assertIn(needle, notes)


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
KINDS = ["emailproviders", "exchangeserviceaccounts", "mailboxbindings"]


def granted(role):
    """{(apiGroup, resource): verbs} of a role's rules."""
    out = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def aggregated_into(role):
    return {
        key[len(AGGREGATE):]
        for key, value in role["metadata"]["labels"].items()
        if key.startswith(AGGREGATE) and value == "true"
    }


class AggregatedRolesTest(unittest.TestCase):
    """The README's "Who may do what": namespace editors manage their bindings through the
    built-in roles, which aggregate these two; nothing reaches `use`."""

    @classmethod
    def setUpClass(cls):
        cls.objects, _ = render()

    def test_view_reads_every_kind_and_joins_view_edit_and_admin(self):
        role = named(self.objects, "ClusterRole", f"{RELEASE}-view")
        self.assertEqual(aggregated_into(role), {"view", "edit", "admin"})
        self.assertEqual(
            granted(role), {("mailops.dev", kind): {"get", "list", "watch"} for kind in KINDS}
        )

    def test_edit_writes_bindings_only_and_joins_edit_and_admin(self):
        role = named(self.objects, "ClusterRole", f"{RELEASE}-edit")
        self.assertEqual(aggregated_into(role), {"edit", "admin"})
        self.assertEqual(
            granted(role),
            {
                ("mailops.dev", "mailboxbindings"): {
                    "create", "update", "patch", "delete", "deletecollection"
                }
            },
        )

    def test_no_aggregated_role_grants_use_or_reaches_status_or_secrets(self):
        for name in (f"{RELEASE}-view", f"{RELEASE}-edit"):
            role = named(self.objects, "ClusterRole", name)
            for (group, resource), verbs in granted(role).items():
                self.assertNotIn("use", verbs, name)
                self.assertEqual(group, "mailops.dev", name)
                self.assertNotIn("/", resource, name)

    def test_only_these_two_roles_are_aggregated(self):
        aggregated = {
            o["metadata"]["name"] for o in by_kind(self.objects, "ClusterRole") if aggregated_into(o)
        }
        self.assertEqual(aggregated, {f"{RELEASE}-view", f"{RELEASE}-edit"})

    def test_notes_say_who_the_aggregation_lets_in(self):
        _, manifests = render()
        notes = manifests["mailops/templates/NOTES.txt"]
        self.assertIn("mailops-edit is aggregated", notes)
        _, manifests = render({"webhook": {"enabled": False}})
        notes = manifests["mailops/templates/NOTES.txt"]
        self.assertIn("every holder of the built-in edit or admin", notes)
        _, manifests = render({"rbac": {"aggregateClusterRoles": False}})
        self.assertNotIn("aggregated", manifests["mailops/templates/NOTES.txt"])

    def test_the_value_turns_them_off(self):
        objects, _ = render({"rbac": {"aggregateClusterRoles": False}})
        names = {o["metadata"]["name"] for o in by_kind(objects, "ClusterRole")}
        self.assertNotIn(f"{RELEASE}-view", names)
        self.assertNotIn(f"{RELEASE}-edit", names)
        self.assertIn(f"{RELEASE}-serviceaccount-user", names)
        self.assertFalse([o for o in by_kind(objects, "ClusterRole") if aggregated_into(o)])


class ValuesTest(unittest.TestCase):
    def test_optional_parts_render_when_enabled(self):
        objects, _ = render({**ALL_OPTIONAL, "replicaCount": 2})
        monitor = one(objects, "ServiceMonitor")
        service = metrics_service(objects)
        self.assertEqual(monitor["spec"]["endpoints"][0]["port"], "http-metrics")
        self.assertEqual(monitor["spec"]["endpoints"][0]["path"], "/metrics")
        self.assertLessEqual(
            monitor["spec"]["selector"]["matchLabels"].items(),
            service["metadata"]["labels"].items(),
        )
        pdb = one(objects, "PodDisruptionBudget")
        self.assertEqual(pdb["spec"]["maxUnavailable"], 1)
        self.assertEqual(
            pdb["spec"]["selector"]["matchLabels"],
            one(objects, "Deployment")["spec"]["selector"]["matchLabels"],
        )
        self.assertEqual(one(objects, "Deployment")["spec"]["replicas"], 2)
        self.assertNotIn("--no-leader-election", container(objects)["args"])

    def test_secret_write_back_off_leaves_secrets_read_only(self):
        objects, manifests = render({"rbac": {"secretWriteBack": False}})
        (rule,) = rules_for(operator_role(objects), "", "secrets")
        self.assertEqual(rule["verbs"], ["get", "list", "watch"])
        self.assertIn("secretWriteBack=false", manifests["mailops/templates/NOTES.txt"])
        # ...and the operator is told, so it does not try a patch it may not make.
        self.assertIn("--no-secret-write-back", container(objects)["args"])

    def test_config_maps_are_read_only_whatever_the_write_back(self):
        for write_back in (False, True):
            objects, _ = render({"rbac": {"secretWriteBack": write_back}})
            (rule,) = rules_for(operator_role(objects), "", "configmaps")
            self.assertEqual(rule["verbs"], ["get", "list", "watch"])

    def test_secret_write_back_on_adds_only_patch(self):
        objects, _ = render({"rbac": {"secretWriteBack": True}})
        (rule,) = rules_for(operator_role(objects), "", "secrets")
        self.assertEqual(rule["verbs"], ["get", "list", "watch", "patch"])
        self.assertNotIn("--no-secret-write-back", container(objects)["args"])

    def test_the_login_budget_reaches_the_container(self):
        objects, _ = render({})
        args = container(objects)["args"]
        self.assertEqual(args[args.index("--login-failures-per-window") + 1], "3")
        self.assertEqual(args[args.index("--login-failure-window-seconds") + 1], "1800")
        objects, _ = render({"loginBudget": {"failuresPerWindow": 2, "windowSeconds": 3600}})
        args = container(objects)["args"]
        self.assertEqual(args[args.index("--login-failures-per-window") + 1], "2")
        self.assertEqual(args[args.index("--login-failure-window-seconds") + 1], "3600")

    def test_log_settings_reach_the_container(self):
        objects, _ = render({"logFormat": "json", "logLevel": "info,mailops=debug"})
        main = container(objects)
        self.assertEqual(main["args"][:3], ["run", "--log-format", "json"])
        env = {e["name"]: e.get("value") for e in main["env"]}
        self.assertEqual(env["RUST_LOG"], "info,mailops=debug")

    def test_single_replica_may_turn_leader_election_off(self):
        objects, _ = render({"leaderElection": {"enabled": False}})
        self.assertIn("--no-leader-election", container(objects)["args"])

    def test_several_replicas_without_leader_election_fail(self):
        with self.assertRaisesRegex(helm.HelmError, "leaderElection"):
            render({"replicaCount": 3, "leaderElection": {"enabled": False}})

    def test_bad_values_are_rejected_by_the_schema(self):
        bad = {
            "replicaCount as a word": ({"replicaCount": "two"}, "replicaCount"),
            "unknown top-level key": ({"replicas": 2}, "replicas"),
            "unknown log format": ({"logFormat": "xml"}, "logFormat"),
            "typo in a nested key": ({"serviceMonitor": {"enable": True}}, "enable"),
            "write-back as a string": ({"rbac": {"secretWriteBack": "yes"}}, "secretWriteBack"),
            "aggregation as a string": (
                {"rbac": {"aggregateClusterRoles": "no"}},
                "aggregateClusterRoles",
            ),
            "bad scrape interval": ({"serviceMonitor": {"interval": "often"}}, "interval"),
            "proxy without a scheme": ({"proxy": {"https": "proxy.contoso.com:3128"}}, "https"),
            "misspelt proxy key": ({"proxy": {"httpsProxy": "http://p:3128"}}, "httpsProxy"),
            "extraEnv without a name": ({"extraEnv": [{"value": "x"}]}, "name"),
        }
        with helm.Chart.load(CHART) as chart:
            for label, (values, field) in bad.items():
                with self.subTest(label):
                    with self.assertRaises(helm.HelmValuesError) as raised:
                        chart.validate_schema(values)
                    self.assertRegex(str(raised.exception), re.escape(field))
                    # What `helm install` runs: the render refuses the same values.
                    with self.assertRaises(helm.HelmValuesError):
                        chart.render(values, name=RELEASE, namespace=NAMESPACE)
            chart.validate_schema(ALL_OPTIONAL)
            chart.validate_schema({"podDisruptionBudget": {"maxUnavailable": "50%"}})


# The matchConditions the chart registers; tests/e2e_webhook.rs registers the same ones
# on a real API server.
USES_SERVICE_ACCOUNT = (
    "has(object.spec) && has(object.spec.authentication)"
    " && has(object.spec.authentication.serviceAccountRef)"
)
NOT_SENT_TO_USE = f"request.resource.resource != 'mailboxbindings' || !({USES_SERVICE_ACCOUNT})"


def webhooks(objects):
    configuration = one(objects, "ValidatingWebhookConfiguration")
    return {w["name"]: w for w in configuration["webhooks"]}


class WebhookTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objects, cls.manifests = render()

    def test_three_webhooks_with_their_failure_policies(self):
        hooks = webhooks(self.objects)
        self.assertEqual(sorted(hooks), ["deletion.mailops.dev", "use.mailops.dev", "warnings.mailops.dev"])
        use, warn, delete = hooks["use.mailops.dev"], hooks["warnings.mailops.dev"], hooks["deletion.mailops.dev"]
        # A webhook that is down must not let a service-account binding through...
        self.assertEqual(use["failurePolicy"], "Fail")
        self.assertEqual(use["rules"], [{"apiGroups": ["mailops.dev"], "apiVersions": ["*"],
                                         "operations": ["CREATE", "UPDATE"],
                                         "resources": ["mailboxbindings"], "scope": "Namespaced"}])
        self.assertEqual(use["matchConditions"], [{"name": "uses-a-service-account", "expression": USES_SERVICE_ACCOUNT}])
        # ...but never blocks cleanup or anything else.
        self.assertEqual(warn["failurePolicy"], "Ignore")
        self.assertEqual(warn["matchConditions"], [{"name": "not-sent-to-use", "expression": NOT_SENT_TO_USE}])
        self.assertEqual(warn["rules"][0]["operations"], ["CREATE", "UPDATE"])
        self.assertEqual(sorted(warn["rules"][0]["resources"]),
                         ["emailproviders", "exchangeserviceaccounts", "mailboxbindings"])
        self.assertEqual(delete["failurePolicy"], "Ignore")
        self.assertEqual(delete["rules"][0]["operations"], ["DELETE"])
        self.assertEqual(sorted(delete["rules"][0]["resources"]), ["emailproviders", "exchangeserviceaccounts"])
        for hook in hooks.values():
            self.assertEqual(hook["sideEffects"], "None")
            self.assertEqual(hook["admissionReviewVersions"], ["v1"])
            self.assertLessEqual(hook["timeoutSeconds"], 10)
            for rule in hook["rules"]:
                self.assertNotIn("/", "".join(rule["resources"]), "no subresource (status writes)")

    def test_webhooks_reach_the_webhook_port_through_the_service(self):
        service = named(self.objects, "Service", "mailops-webhook")
        self.assertEqual(service["spec"]["ports"], [{"name": "https-webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}])
        for hook in webhooks(self.objects).values():
            self.assertEqual(hook["clientConfig"], {"service": {"namespace": NAMESPACE, "name": "mailops-webhook", "path": "/validate", "port": 443}})
        args = container(self.objects)["args"]
        self.assertEqual(args_after(args, "--webhook-service"), "mailops-webhook")
        self.assertEqual(args_after(args, "--webhook-addr"), "0.0.0.0:9443")

    def test_the_operator_may_write_only_its_own_secret_and_webhook_configuration(self):
        args = container(self.objects)["args"]
        secret = named(self.objects, "Secret", args_after(args, "--webhook-secret"))
        self.assertNotIn("data", secret)
        self.assertEqual(named(self.objects, "Role", "mailops-webhook")["rules"], [
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["mailops-webhook-tls"], "verbs": ["get", "update"]}])
        configuration = one(self.objects, "ValidatingWebhookConfiguration")
        self.assertEqual(configuration["metadata"]["name"], args_after(args, "--webhook-configuration"))
        self.assertEqual(named(self.objects, "ClusterRole", "mailops-webhook")["rules"], [
            {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
             "resourceNames": ["mailops"], "verbs": ["get", "update"]}])

    def test_use_is_granted_only_by_a_cluster_role_bound_to_nobody(self):
        role = named(self.objects, "ClusterRole", "mailops-serviceaccount-user")
        self.assertEqual(role["rules"], [{"apiGroups": ["mailops.dev"], "resources": ["exchangeserviceaccounts"], "verbs": ["use"]}])
        self.assertNotIn("aggregationRule", role)
        self.assertFalse([k for k in role["metadata"]["labels"] if "aggregate-to" in k])
        for other in by_kind(self.objects, "ClusterRole") + by_kind(self.objects, "Role"):
            if other is not role:
                self.assertFalse([r for r in other["rules"] if "use" in r["verbs"]], other["metadata"]["name"])
        for binding in by_kind(self.objects, "ClusterRoleBinding") + by_kind(self.objects, "RoleBinding"):
            self.assertNotEqual(binding["roleRef"]["name"], "mailops-serviceaccount-user")

    def test_notes_say_how_to_grant_use(self):
        notes = self.manifests["mailops/templates/NOTES.txt"]
        self.assertIn("--clusterrole=mailops-serviceaccount-user", notes)
        self.assertIn("resourceNames", notes)

    def test_webhook_off_leaves_no_trace(self):
        objects, manifests = render({"webhook": {"enabled": False}})
        kinds = {o["kind"] for o in objects}
        self.assertNotIn("ValidatingWebhookConfiguration", kinds)
        self.assertNotIn("Secret", kinds)
        self.assertEqual([s["metadata"]["name"] for s in by_kind(objects, "Service")], ["mailops-metrics"])
        main = container(objects)
        self.assertIn("--no-webhook", main["args"])
        self.assertEqual([p["name"] for p in main["ports"]], ["http"])
        self.assertEqual(sorted(r["metadata"]["name"] for r in by_kind(objects, "ClusterRole")),
                         ["mailops", "mailops-edit", "mailops-serviceaccount-user", "mailops-view"])
        self.assertIn("webhook.enabled=false", manifests["mailops/templates/NOTES.txt"])

    def test_in_use_deletion_may_be_admitted(self):
        objects, _ = render({"webhook": {"refuseInUseDeletion": False}})
        self.assertEqual(sorted(webhooks(objects)), ["use.mailops.dev", "warnings.mailops.dev"])
        self.assertIn("--webhook-allow-in-use-deletion", container(objects)["args"])

    def test_cert_manager_writes_the_secret_and_injects_the_ca(self):
        objects, _ = render({"webhook": {"certManager": {"enabled": True}}})
        certificate = one(objects, "Certificate")
        issuer = one(objects, "Issuer")
        self.assertEqual(issuer["spec"], {"selfSigned": {}})
        self.assertEqual(certificate["spec"]["issuerRef"], {"name": issuer["metadata"]["name"], "kind": "Issuer", "group": "cert-manager.io"})
        args = container(objects)["args"]
        self.assertIn("--webhook-cert-manager", args)
        self.assertEqual(certificate["spec"]["secretName"], args_after(args, "--webhook-secret"))
        self.assertIn(f"mailops-webhook.{NAMESPACE}.svc", certificate["spec"]["dnsNames"])
        configuration = one(objects, "ValidatingWebhookConfiguration")
        self.assertEqual(configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
                         f"{NAMESPACE}/{certificate['metadata']['name']}")
        self.assertEqual(by_kind(objects, "Secret"), [], "cert-manager owns the Secret")
        self.assertEqual(named(objects, "Role", "mailops-webhook")["rules"][0]["verbs"], ["get"])
        self.assertEqual(len(named(objects, "ClusterRole", "mailops-webhook")["rules"]), 1, "no caBundle writes")
        objects, _ = render({"webhook": {"certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}}})
        self.assertEqual(by_kind(objects, "Issuer"), [])
        self.assertEqual(one(objects, "Certificate")["spec"]["issuerRef"], {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})

    def test_bad_webhook_values_are_rejected(self):
        bad = {
            "port as a word": ({"webhook": {"port": "https"}}, "port"),
            "typo": ({"webhook": {"refuseInUseDeletions": False}}, "refuseInUseDeletions"),
            "long timeout": ({"webhook": {"timeoutSeconds": 60}}, "timeoutSeconds"),
            "issuer kind": ({"webhook": {"certManager": {"issuerRef": {"name": "x", "kind": "Vault"}}}}, "kind"),
        }
        with helm.Chart.load(CHART) as chart:
            for label, (values, field) in bad.items():
                with self.subTest(label):
                    with self.assertRaises(helm.HelmValuesError) as raised:
                        chart.validate_schema(values)
                    self.assertRegex(str(raised.exception), re.escape(field))


if __name__ == "__main__":
    unittest.main()
