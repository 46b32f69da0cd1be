"""`reconciler report`: a self-contained HTML page, checked in a real headless Chromium."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.findings import Finding
from reconciler.fleet.inventory import build_report
from reconciler.model import (
    Address,
    DesiredKeyPair,
    DesiredSet,
    LiveInstance,
    LiveKeyPair,
    LiveSnapshot,
    Rotation,
    Source,
    StateEntry,
)
from reconciler.output.html import age_histogram, render
from reconciler.planning.drift import DriftFinding, DriftKind
from tests.browser import Chromium, Page, chromium_binary
from tests.conftest import ACCESS_KEY, SECRET_KEY
from tests.helpers import run_cli, write_manifest

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

US, EU = "us-east-1", "eu-west-1"
DAY = 86400.0
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS") or Path(__file__).parents[2] / "test-artifacts")


def test_report_rows_origins_ages_and_escaping() -> None:
    now = 1_800_000_000.0
    web, odd, new = Address(US, "web"), Address(US, "odd"), Address(EU, "new")
    live = LiveSnapshot(
        {
            web: LiveKeyPair(web, "arn:w", "fp", now - 40 * DAY, {"env": "prod"}),
            odd: LiveKeyPair(odd, "arn:o", "fp", now - 800 * DAY, {"<b>": "</script>", "n": None}),
        },
        (EU, US),
    )
    desired = DesiredSet(
        {
            web: DesiredKeyPair(web, {"env": "prod"}, Source("m.yaml", 1, 1)),
            new: DesiredKeyPair(new, {}, Source("m.yaml", 5, 1)),
        }
    )
    entries = {web: StateEntry(web, "created", "arn:w", "fp", now - 40 * DAY, {"env": "prod"})}
    pending = DriftFinding(DriftKind.PENDING, new, "declared, not yet applied")
    report = build_report(desired, entries, {}, live, [pending], now=now, source="s.json")
    rows = {str(r.address): r for r in report.rows}
    assert {a: r.origin for a, r in rows.items()} == {
        "eu-west-1/new": "declared",
        "us-east-1/odd": "unmanaged",
        "us-east-1/web": "created",
    }
    assert rows["eu-west-1/new"].findings == ("pending: declared, not yet applied",)
    assert rows["eu-west-1/new"].created_at is None and not rows["eu-west-1/new"].live
    assert [(c.region, c.total, c.managed, c.unmanaged, c.with_findings) for c in
            report.region_counts()] == [(EU, 1, 0, 0, 1), (US, 2, 1, 1, 0)]  # fmt: skip
    assert dict(age_histogram(report)) == {
        "< 7 d": 0, "7-30 d": 0, "30-90 d": 1, "90-180 d": 0, "180-365 d": 0, "1-2 y": 0,
        "> 2 y": 1,
    }  # fmt: skip
    page = render(report)
    assert "</script>" not in page.split("<tbody>")[1].split("</tbody>")[0]
    assert "&lt;b&gt;=&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)  # nothing fetched
    assert "default-src 'none'" in page


def test_rows_carry_instances_rotation_due_and_policy_findings() -> None:
    now = 1_800_000_000.0
    old, fresh, plain, gone = (Address(US, n) for n in ("old", "fresh", "plain", "gone"))
    far = Address(EU, "far")
    live = LiveSnapshot(
        {
            old: LiveKeyPair(old, "arn:o", "fp", now - 40 * DAY, {}),
            fresh: LiveKeyPair(fresh, "arn:f", "fp", now - 10 * DAY, {}),
            plain: LiveKeyPair(plain, "arn:p", "fp", now - 10 * DAY, {}),
            far: LiveKeyPair(far, "arn:x", "fp", now - DAY, {}),
        },
        (EU, US),
    )
    src = Source("m.yaml", 1, 1)
    desired = DesiredSet(
        {
            old: DesiredKeyPair(old, {}, src, rotation=Rotation(30 * DAY)),
            fresh: DesiredKeyPair(fresh, {}, src, rotation=Rotation(90 * DAY)),
            plain: DesiredKeyPair(plain, {}, src),
        }
    )
    instances = [
        LiveInstance(US, "b-vm", plain, now),
        LiveInstance(US, "a-vm", plain, now),
        LiveInstance(US, "lost-vm", gone, now),
        LiveInstance(US, "default-vm", None, now),
    ]
    policy = [
        Finding("max-key-age", "key pair us-east-1/old is 40 days old; at most 35", "error",
                "m.yaml", 1, 1, str(old)),
        Finding("required-tags", "key pair us-east-1/plain lacks owner", "warning",
                "m.yaml", 1, 1, str(plain)),
    ]  # fmt: skip
    used = DriftFinding(DriftKind.UNMANAGED_KEY_IN_USE, gone, "instances launched with: lost-vm")
    report = build_report(
        desired, {}, {}, live, [used], now=now, instances=instances,
        instance_regions=[US], policy=policy,
    )  # fmt: skip
    rows = {r.address.name: r for r in report.rows}
    # Instances: names per key pair where read; "not known" (None) in a region not read.
    assert rows["plain"].instances == ("a-vm", "b-vm") and rows["old"].instances == ()
    assert rows["far"].instances is None
    # A key pair only an instance names still gets a row, with its finding.
    assert rows["gone"].origin == "unmanaged" and not rows["gone"].live
    assert rows["gone"].findings == ("unmanaged-key-in-use: instances launched with: lost-vm",)
    # Rotation: createdAt + after, due now exactly when the planner would rotate.
    assert rows["old"].rotation_due == now - 10 * DAY and rows["old"].rotation_now
    assert rows["fresh"].rotation_due == now + 80 * DAY and not rows["fresh"].rotation_now
    assert rows["plain"].rotation_due is None and not rows["plain"].rotation_now
    assert [p.rule for p in rows["old"].policy] == ["max-key-age"]
    assert [p.severity for p in rows["plain"].policy] == ["warning"]
    assert [(c.region, c.with_findings) for c in report.region_counts()] == [(EU, 0), (US, 3)]
    page = render(report)
    assert 'title="a-vm, b-vm">2</td>' in page
    assert ">due now</td>" in page and "(10 d overdue)" in page
    assert 'class="policy policy-error" data-rule="max-key-age"' in page


def test_instances_are_matched_per_account_and_region() -> None:
    now = 1_800_000_000.0
    prod, staging = Address(US, "web", "prod"), Address(US, "web", "staging")
    live = LiveSnapshot(
        {a: LiveKeyPair(a, "arn", "fp", now - DAY, {}) for a in (prod, staging)},
        ("prod/us-east-1", "staging/us-east-1"),
    )
    report = build_report(
        DesiredSet({}), {}, {}, live, [], now=now,
        instances=[LiveInstance(US, "vm", staging, now)],
        instance_regions=["staging/us-east-1"],
    )  # fmt: skip
    rows = {r.address: r.instances for r in report.rows}
    assert rows == {prod: None, staging: ("vm",)}  # prod's instances were not read


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A report over 2,001 key pairs: 1,500 adopted (3 drifted, 3 unused), 500 unmanaged
    (one used by an instance), 1 declared."""
    root = tmp_path_factory.mktemp("report")
    with _clean_env():
        yield _make_report(root, _env(root))


@contextlib.contextmanager
def _clean_env() -> Iterator[None]:
    # Module fixtures run before the per-test clean environment: give the CLI its own.
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        yield


def _env(root: Path) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": US,
        "AWS_CONFIG_FILE": str(root / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-credentials"),
    }


def _make_report(root: Path, env: dict[str, str]) -> Path:
    with Emulator(EmulatorConfig(port=0)) as emu:
        emu.store.seed_key_pairs(US, 1500, prefix="web-", tags={"team": "web"})
        emu.store.seed_key_pairs(EU, 500, prefix="etl-", tags={"team": "data"})
        now = time.time()
        for i in range(1500):
            emu.store.set_created_at(US, f"web-{i:06d}", now - (i % 900) * DAY - 3600)
        imported = run_cli(
            "import", "--all", "--region", US, "--write-manifests", "m", "--auto-approve",
            cwd=root, endpoint=emu.url, env=env,
        )  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        write_manifest(root / "m" / "eu.yaml", EU, "- name: etl-new\n  tags: {team: data}")
        for i in (3, 30, 300):
            emu.store.set_tags(US, f"web-{i:06d}", {"team": "web", "edited": "by hand"})
        for i in range(1500):
            if i % 500 != 499:  # web-000499, web-000999 and web-001499 stay unused
                emu.store.seed_instances(US, 1, key_pair_name=f"web-{i:06d}", prefix=f"vm{i}-")
        emu.store.seed_instances(EU, 2, key_pair_name="etl-000007", prefix="etl-vm-")
        result = run_cli("report", "m", "--out", "report.html", cwd=root, endpoint=emu.url, env=env)
        assert result.returncode == 0, result.stderr
        assert "Wrote report.html: 2001 key pair(s) in 2 region(s)." in result.stderr
    return root / "report.html"


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium(chromium_binary()) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def page(browser: Chromium, report_file: Path) -> Page:
    tab = browser.page()
    tab.open(report_file.as_uri())
    return tab


def test_the_page_loads_without_errors_or_fetches_and_shows_the_counts(page: Page) -> None:
    assert page.errors() == []
    assert [u for u in page.requests() if not u.startswith(("file:", "data:"))] == []
    counts = page.evaluate(
        "Object.fromEntries(['total','managed','unmanaged','findings','regions'].map("
        "k => [k, document.getElementById('count-' + k).textContent]))"
    )
    assert counts == {
        "total": "2001",
        "managed": "1500",
        "unmanaged": "500",
        "findings": "8",
        "regions": "2",
    }
    by_region = page.evaluate(
        "Array.from(document.querySelectorAll('#regions tbody tr')).map(r => "
        "[r.dataset.region].concat(Array.from(r.querySelectorAll('[data-field]')).map("
        "c => Number(c.textContent))))"
    )
    assert by_region == [[EU, 501, 0, 500, 2], [US, 1500, 1500, 0, 6]]
    bars = page.evaluate(
        "Array.from(document.querySelectorAll('#age-chart rect.bar')).map(b => "
        "Number(b.dataset.count))"
    )
    assert sum(bars) == 2000 and bars[-1] > 0  # the declared one has no age yet
    assert page.evaluate("document.getElementById('shown').textContent") == (
        "Showing 2001 of 2001 key pairs"
    )
    page.screenshot(ARTIFACTS / "report.png")
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def _visible(page: Page) -> list[str]:
    result: list[str] = page.evaluate(
        "Array.from(document.querySelectorAll('#keypairs tbody tr')).filter(r => !r.hidden)"
        ".map(r => r.cells[0].textContent)"
    )
    return result


def test_typing_in_the_filter_narrows_the_table(page: Page) -> None:
    page.evaluate("document.getElementById('filter').focus()")
    page.type_text("edited")
    assert _visible(page) == [
        "us-east-1/web-000003",
        "us-east-1/web-000030",
        "us-east-1/web-000300",
    ]
    assert page.evaluate("document.getElementById('shown').textContent") == (
        "Showing 3 of 2001 key pairs"
    )
    page.evaluate("document.getElementById('filter').value = ''")
    page.evaluate(
        "{ const r = document.getElementById('region'); r.value = 'eu-west-1';"
        "r.dispatchEvent(new Event('change')) }"
    )
    assert len(_visible(page)) == 501
    page.evaluate("document.getElementById('only-findings').click()")
    assert _visible(page) == ["eu-west-1/etl-000007", "eu-west-1/etl-new"]
    page.evaluate(
        "{ const r = document.getElementById('region'); r.value = '';"
        "r.dispatchEvent(new Event('change')); document.getElementById('only-findings').click() }"
    )
    assert len(_visible(page)) == 2001
    page.screenshot(ARTIFACTS / "report-filtered.png")
    assert page.errors() == []


def _ages(page: Page) -> list[float]:
    ages: list[float] = page.evaluate(
        "Array.from(document.querySelectorAll('#keypairs tbody tr')).map(r => "
        "r.cells[3].dataset.v === '' ? 1e9 : Number(r.cells[3].dataset.v))"
    )
    return ages


def test_clicking_a_header_sorts_by_that_column(page: Page) -> None:
    age_header = "document.querySelectorAll('#keypairs th')[3]"
    page.evaluate(f"{age_header}.click()")
    ascending = _ages(page)
    assert ascending == sorted(ascending) and ascending[0] < 1
    assert _visible(page)[-1] == "eu-west-1/etl-new"  # no age yet: last
    page.evaluate(f"{age_header}.click()")
    assert page.evaluate(f"{age_header}.getAttribute('aria-sort')") == "descending"
    descending = _ages(page)
    assert descending == sorted(descending, reverse=True)
    assert _visible(page)[:2] == ["eu-west-1/etl-new", "us-east-1/web-000899"]
    page.evaluate("document.querySelectorAll('#keypairs th')[0].click()")
    assert _visible(page)[0] == "eu-west-1/etl-000000"
    findings_header = "document.querySelectorAll('#keypairs th')[7]"
    page.evaluate(f"{findings_header}.click()")
    page.evaluate(f"{findings_header}.click()")
    assert _visible(page)[:8] == [
        "eu-west-1/etl-000007",
        "eu-west-1/etl-new",
        "us-east-1/web-000003",
        "us-east-1/web-000030",
        "us-east-1/web-000300",
        "us-east-1/web-000499",
        "us-east-1/web-000999",
        "us-east-1/web-001499",
    ]
    assert page.errors() == []


def test_a_missing_browser_fails_in_ci_and_skips_loudly_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="BROWSER TESTS NOT RUN: Chromium is missing"):
        chromium_binary()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        chromium_binary()


SMALL_POLICY = """\
policy:
  rules:
    - id: max-key-age
      days: 35
    - id: required-tags
      severity: warning
      keys: {owner: null}
"""


@pytest.fixture(scope="module")
def small_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, float]]:
    """Three applied key pairs: ``old`` backdated past its rotation and max-key-age,
    ``fresh`` used by an instance, ``web`` (no owner tag) used by two; and an instance
    launched with ``stray``, which the tool does not manage. Yields the page and when
    ``fresh`` was created (about)."""
    root = tmp_path_factory.mktemp("report-small")
    env = _env(root)
    (root / "reconciler.yaml").write_text(SMALL_POLICY)
    write_manifest(
        root / "m" / "us.yaml",
        US,
        "- name: old\n  tags: {owner: ana}\n  rotate: {after: 30d}\n"
        "- name: fresh\n  tags: {owner: bo}\n  rotate: {after: 90d}\n"
        "- name: web\n  tags: {team: web}\n",
    )
    with _clean_env(), Emulator(EmulatorConfig(port=0)) as emu:
        applied = run_cli("apply", "m", "--auto-approve", cwd=root, endpoint=emu.url, env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        now = time.time()
        emu.store.set_created_at(US, "old", now - 40 * DAY)
        emu.store.seed_instances(US, 2, key_pair_name="web", prefix="web-vm-")
        emu.store.seed_instances(US, 1, key_pair_name="fresh", prefix="fresh-vm-")
        emu.store.seed_instances(US, 1, key_pair_name="stray", prefix="stray-vm-")
        result = run_cli("report", "m", "--out", "report.html", cwd=root, endpoint=emu.url, env=env)
        assert result.returncode == 0, result.stderr
    yield root / "report.html", now


@pytest.fixture(scope="module")
def small_page(browser: Chromium, small_report: tuple[Path, float]) -> Page:
    tab = browser.page()
    tab.open(small_report[0].as_uri())
    return tab


def _cells(page: Page) -> dict[str, dict[str, object]]:
    """Per visible row: the instances, rotation and findings cells, as shown."""
    result: dict[str, dict[str, object]] = page.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('#keypairs tbody tr'))"
        ".filter(r => !r.hidden).map(r => [r.cells[0].textContent, {"
        "instances: r.cells[5].textContent, users: r.cells[5].title,"
        "rotation: r.cells[6].textContent, due: r.cells[6].dataset.v, late: r.cells[6].title,"
        "findings: Array.from(r.cells[7].querySelectorAll('.finding')).map(s => s.textContent),"
        "policy: Array.from(r.cells[7].querySelectorAll('.policy')).map(s => "
        "[s.dataset.rule, s.classList.contains('policy-error') ? 'error' : 'warning'])}]))"
    )
    return result


def test_instances_rotation_and_policy_columns_in_the_browser(
    small_page: Page, small_report: tuple[Path, float]
) -> None:
    page, (_, now) = small_page, small_report
    assert page.errors() == []
    counts = page.evaluate(
        "['total','managed','unmanaged','findings'].map("
        "k => document.getElementById('count-' + k).textContent)"
    )
    assert counts == ["4", "3", "1", "3"]  # old, web (policy only) and stray have findings
    cells = _cells(page)
    assert list(cells) == ["us-east-1/fresh", "us-east-1/old", "us-east-1/stray", "us-east-1/web"]
    fresh, old, stray, web = cells.values()
    assert (web["instances"], web["users"]) == ("2", "web-vm-000000, web-vm-000001")
    assert (fresh["instances"], fresh["users"]) == ("1", "fresh-vm-000000")
    assert (old["instances"], old["users"]) == ("0", "")
    assert (stray["instances"], stray["users"]) == ("1", "stray-vm-000000")
    # Rotation: old fell due 10 days ago (40 days old, rotate after 30); fresh in 90 days.
    assert old["rotation"] == "due now" and "(10 d overdue)" in str(old["late"])
    assert abs(float(str(old["due"])) - (now - 10 * DAY)) < 60
    due = float(str(fresh["due"]))
    assert now + 90 * DAY - 600 < due < now + 90 * DAY + 1  # data-v is whole seconds
    assert fresh["rotation"] == time.strftime("%Y-%m-%d", time.gmtime(due))
    assert web["rotation"] == stray["rotation"] == ""
    assert old["findings"] == ["unused: no instance was launched with it"]
    assert old["policy"] == [["max-key-age", "error"]]
    assert web["findings"] == [] and web["policy"] == [["required-tags", "warning"]]
    assert stray["findings"] == [
        "unmanaged-key-in-use: instances launched with a key pair the tool does not manage: "
        "stray-vm-000000"
    ]
    assert fresh["findings"] == [] and fresh["policy"] == []
    # "only with findings" counts policy findings: web shows, fresh does not.
    page.evaluate("document.getElementById('only-findings').click()")
    assert _visible(page) == ["us-east-1/old", "us-east-1/stray", "us-east-1/web"]
    page.evaluate("document.getElementById('filter').focus()")
    page.type_text("max-key-age")
    assert _visible(page) == ["us-east-1/old"]
    page.evaluate(
        "{ const f = document.getElementById('filter'); f.value = '';"
        "f.dispatchEvent(new Event('input')); document.getElementById('only-findings').click() }"
    )
    instances_header = "document.querySelectorAll('#keypairs th')[5]"
    page.evaluate(f"{instances_header}.click()")
    page.evaluate(f"{instances_header}.click()")
    assert _visible(page) == [
        "us-east-1/web",
        "us-east-1/fresh",
        "us-east-1/stray",
        "us-east-1/old",
    ]
    page.evaluate("document.querySelectorAll('#keypairs th')[0].click()")
    page.screenshot(ARTIFACTS / "report-columns.png")
    assert (ARTIFACTS / "report-columns.png").stat().st_size > 10_000
    assert page.errors() == []


def test_instances_that_cannot_be_read_show_as_not_known_where_they_failed(
    tmp_path: Path, emulator: Emulator
) -> None:
    emulator.store.seed_key_pairs(US, 2, prefix="web-")
    emulator.store.seed_key_pairs(EU, 2, prefix="etl-")
    emulator.store.seed_instances(US, 1, key_pair_name="web-000000", prefix="web-vm-")
    emulator.store.seed_instances(EU, 1, key_pair_name="etl-000000", prefix="etl-vm-")
    imported = run_cli(
        "import", "--all", "--region", US, "--region", EU, "--write-manifests", "m",
        "--auto-approve", cwd=tmp_path, endpoint=emulator.url,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    emulator.region_operation_errors[(EU, "GetInstances")] = "AccessDeniedException"

    result = run_cli("report", "m", "--out", "report.html", cwd=tmp_path, endpoint=emulator.url)
    assert result.returncode == 1, result.stderr
    assert "Wrote report.html: 4 key pair(s) in 2 region(s)." in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith(f"Warning: instances in {EU} could not be read: ")
    assert "(AccessDeniedException)" in warnings[0]
    assert warnings[0].endswith("the report shows the instances of its key pairs as not known")
    assert "Traceback" not in result.stderr
    page = (tmp_path / "report.html").read_text()
    assert f'data-note="instances-unread">instances in {EU} could not be read: ' in page
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"<tr data-region=\"[^\"]+\" data-findings=\"\d+\"><td>([^<]+)</td>"
                             r"(.*?)</tr>", page)
    }  # fmt: skip
    unknown = '<td class="num unknown" data-v="" title="instances not read">not known</td>'
    assert unknown in rows[f"{EU}/etl-000000"] and unknown in rows[f"{EU}/etl-000001"]
    assert 'data-v="1" title="web-vm-000000">1</td>' in rows[f"{US}/web-000000"]
    assert '<td class="num" data-v="0">0</td>' in rows[f"{US}/web-000001"]

    # drift --instances: no use findings where instances were not read, and an error.
    drift = run_cli("drift", "m", "--instances", cwd=tmp_path, endpoint=emulator.url)
    assert drift.returncode == 1, drift.stderr
    assert f"unused               {US}/web-000001" in drift.stdout
    assert EU not in drift.stdout.split("\n", 1)[1], drift.stdout
    assert f"Error: instances in {EU} could not be read: " in drift.stderr


def test_instances_unread_in_a_whole_account_are_named_once_per_account() -> None:
    from reconciler.aws.lightsail import InstanceReading
    from reconciler.cli.drift import instances_unread_line
    from reconciler.errors import LightsailError

    denied = "not authorized (AccessDeniedException)"
    reading = InstanceReading(
        (),
        ("prod/ap-south-1",),
        {
            f"prod/{US}": LightsailError(f"reading instances in prod/{US}: {denied}", code="x"),
            f"qa/{US}": LightsailError(
                f"reading instances in qa/{US}: {denied}", code="AccessDeniedException"
            ),
            f"qa/{EU}": LightsailError(
                f"reading instances in qa/{EU}: {denied}", code="AccessDeniedException"
            ),
        },
    )
    assert [instances_unread_line(u) for u in reading.unread()] == [
        f"instances of account qa: {denied}: its 2 regions were not read ({EU}, {US})",
        f"instances in prod/{US} could not be read: {denied}",
    ]
