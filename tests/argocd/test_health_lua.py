"""The Argo CD health checks in docs/argocd/*.lua, run by a real Lua 5.1 interpreter
(Debian's lua5.1, the dialect of the gopher-lua Argo CD embeds) on sample objects.

Argo CD sets the global `obj` to the object and reads the table the script returns; the
harness does the same: the object is written as a Lua table literal, the script is loaded
with `dofile`, and its status and message are printed. Without lua5.1 the tests skip,
except under CI=true, where they fail.
"""

import json
import os
import shutil
import subprocess
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "docs" / "argocd"
KINDS = ("EmailProvider", "ExchangeServiceAccount", "MailboxBinding")
HEADER_LINES = 5


def lua_interpreter():
    found = shutil.which("lua5.1")
    if found is None and os.environ.get("CI") == "true":
        raise AssertionError("lua5.1 is missing (apt-get install lua5.1); CI must run these tests")
    return found


def lua_literal(value):
    """A JSON-like value as a Lua 5.1 table constructor (arrays 1-based, as Argo CD's)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid Lua string for this text
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    return "{" + ", ".join(f"[{json.dumps(k)}] = {lua_literal(v)}" for k, v in value.items()) + "}"


def health(lua, kind, obj):
    script = SCRIPTS / f"{kind}.lua"
    program = (
        f"obj = {lua_literal(obj)}\n"
        f"local hs = dofile({json.dumps(str(script))})\n"
        "io.write(hs.status, '\\n', hs.message or '')\n"
    )
    run = subprocess.run([lua, "-"], input=program, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    status, message = run.stdout.split("\n", 1)
    return status, message


def cond(type_, status, reason, message="", observed=3):
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "observedGeneration": observed, "lastTransitionTime": "2026-01-01T00:00:00Z"}


def thing(kind, generation=3, conditions=None, observed=3):
    obj = {"apiVersion": "mailops.dev/v1alpha1", "kind": kind,
           "metadata": {"name": "x", "generation": generation}, "spec": {}}
    if conditions is not None:
        obj["status"] = {"observedGeneration": observed, "conditions": conditions}
    return obj


class HealthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lua = lua_interpreter()
        if cls.lua is None:
            raise unittest.SkipTest("lua5.1 is missing (set CI=true to make this a failure)")

    def check(self, obj, expected, kinds=KINDS):
        for kind in kinds:
            with self.subTest(kind=kind):
                self.assertEqual(health(self.lua, kind, {**obj, "kind": kind}), expected)

    def test_ready_at_the_current_generation_is_healthy(self):
        self.check(thing("K", conditions=[cond("Ready", "True", "Verified", "all checks passed")]),
                   ("Healthy", "all checks passed"))

    def test_no_status_is_progressing(self):
        self.check(thing("K"), ("Progressing", "Waiting for the operator to report Ready"))
        self.check(thing("K", conditions=[]), ("Progressing", "Waiting for the operator to report Ready"))

    def test_an_older_generation_is_progressing_even_when_ready(self):
        old = thing("K", generation=4, conditions=[cond("Ready", "True", "Verified")])
        self.check(old, ("Progressing", "Waiting for the operator to observe generation 4"))
        # The status-level observedGeneration counts when the condition has none.
        c = cond("Ready", "True", "Verified")
        del c["observedGeneration"]
        self.check(thing("K", generation=4, conditions=[c], observed=3),
                   ("Progressing", "Waiting for the operator to observe generation 4"))

    def test_reconciling_is_progressing(self):
        self.check(thing("K", conditions=[cond("Ready", "Unknown", "Reconciling", "first check")]),
                   ("Progressing", "first check"))
        self.check(thing("K", conditions=[cond("Ready", "False", "Reconciling")]),
                   ("Progressing", "Reconciling"))

    def test_ready_false_is_degraded_with_the_message(self):
        message = 'Exchange does not know "sales@contoso.com"\nline two'
        self.check(thing("K", conditions=[cond("Ready", "False", "MailboxNotFound", message)]),
                   ("Degraded", message))
        self.check(thing("K", conditions=[cond("Ready", "False", "SecretNotFound")]),
                   ("Degraded", "SecretNotFound"))

    def test_a_deletion_held_by_users_is_progressing_with_the_message(self):
        message = "deletion waits for 2 object(s) still using it: MailboxBinding a/b, MailboxBinding c/d"
        obj = thing("K", conditions=[cond("Ready", "True", "Verified"),
                                     cond("Terminating", "True", "InUse", message)])
        self.check(obj, ("Progressing", message), kinds=("EmailProvider", "ExchangeServiceAccount"))
        # Terminating without InUse (deletion proceeding) does not hide Ready.
        done = thing("K", conditions=[cond("Ready", "False", "ProviderNotFound", "gone"),
                                      cond("Terminating", "True", "Deleting")])
        self.check(done, ("Degraded", "gone"))

    def test_the_three_scripts_share_one_body_and_name_their_key(self):
        bodies = set()
        for kind in KINDS:
            lines = (SCRIPTS / f"{kind}.lua").read_text().splitlines(keepends=True)
            self.assertIn(f"resource.customizations.health.mailops.dev_{kind}", lines[0])
            bodies.add("".join(lines[HEADER_LINES:]))
        self.assertEqual(len(bodies), 1)


if __name__ == "__main__":
    unittest.main()
