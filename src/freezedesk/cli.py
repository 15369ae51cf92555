"""The ``freezedesk`` command line. Every command honours FREEZEDESK_DATABASE_URL."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from freezedesk.domain.catalogue import CatalogueError
from freezedesk.domain.errors import DomainError
from freezedesk.store.db import database_url

app = typer.Typer(help="FreezeDesk: account restrictions done right.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(keys_app, name="api-keys")
staff_app = typer.Typer(help="Staff members: the people who hold staff keys.", no_args_is_help=True)
app.add_typer(staff_app, name="staff")
app.add_typer(audit_app, name="audit")
lists_app = typer.Typer(help="Sanctions lists in the database.", no_args_is_help=True)
screen_app = typer.Typer(help="Screen names against sanctions lists.", no_args_is_help=True)
app.add_typer(lists_app, name="lists")
app.add_typer(screen_app, name="screen")
events_app = typer.Typer(help="Monitoring events reported by the exchange core.", no_args_is_help=True)
app.add_typer(events_app, name="events")
SourceOption = Annotated[list[str], typer.Option("--source", help="KIND:PATH, e.g. ofac-csv:DIR, un-xml:FILE, "
                                                 "ofac-xml:FILE, eu-xml:FILE, uk-xml:FILE, ftm:FILE; repeatable")]
err = Console(stderr=True)

DbOption = Annotated[str | None, typer.Option("--database-url", envvar="FREEZEDESK_DATABASE_URL",
                                              help="SQLAlchemy or postgresql:// URL")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)  # plain: never wrapped, so paths stay greppable
    return typer.Exit(code)


def _store(url: str | None):  # type: ignore[no-untyped-def]
    from freezedesk.store.uow import Store

    return Store(database_url(url))


@app.command()
def migrate(database_url_: DbOption = None) -> None:
    """Create or upgrade the database schema."""
    from freezedesk.store.migrate import upgrade

    store = _store(database_url_)
    upgrade(store.engine)
    err.print(f"database at {store.engine.url.render_as_string(hide_password=True)} is up to date")


@app.command()
def demo(database_url_: DbOption = None) -> None:
    """Load demo accounts, one restriction per cause, open cases and demo keys (idempotent).

    Also keeps a local webhook secret key (FREEZEDESK_SECRET_KEY_FILE, default next to the demo keys
    in var/secret.key), created once, unless FREEZEDESK_SECRET_KEY is set.
    """
    import os

    from freezedesk.demo import load_demo
    from freezedesk.notify.secretbox import ensure_key_file
    from freezedesk.reference import load_catalogue

    result = load_demo(_store(database_url_), load_catalogue())
    err.print("demo data loaded" if result.loaded else "demo data already present")
    if not os.environ.get("FREEZEDESK_SECRET_KEY", "").strip():
        demo_keys = Path(os.environ.get("FREEZEDESK_DEMO_KEYS", "var/demo-keys.json"))
        key_file = Path(os.environ.get("FREEZEDESK_SECRET_KEY_FILE", "").strip() or demo_keys.parent / "secret.key")
        created = ensure_key_file(key_file)
        err.print(f"webhook secret key {'created in' if created else 'kept in'} {key_file} "
                  f"(serve with FREEZEDESK_SECRET_KEY_FILE={key_file}; `make run` does)", highlight=False,
                  soft_wrap=True)
    for label, key in result.keys.items():
        typer.echo(f"{label:14} {key}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    database_url_: DbOption = None,
    access_log: Annotated[bool, typer.Option(help="Log every request")] = False,
) -> None:
    """Serve the partner API."""
    import uvicorn

    from freezedesk.notify.secretbox import SecretKeyError
    from freezedesk.runtime import Runtime, Settings
    from freezedesk.web.app import create_app

    try:
        runtime = Runtime(Settings(database_url=database_url(database_url_)))
    except (CatalogueError, SecretKeyError) as exc:
        raise _fail(str(exc)) from None
    base = f"http://{host}:{port}"
    err.print(f"FreezeDesk API      {base}/v1\nOpenAPI             {base}/openapi.json\n"
              f"API docs            {base}/docs\nHealth              {base}/healthz", highlight=False)
    uvicorn.run(create_app(runtime), host=host, port=port, access_log=access_log, log_level="info")


def _key_error(exc: DomainError, role: str | None = None) -> typer.Exit:
    """A key or staff error as the operator typed it: the message names the option at fault."""
    from freezedesk.services.api_keys import StaffRoleConflict

    option = exc.extra.get("option")
    if isinstance(exc, StaffRoleConflict):
        return _fail(f"--role {role}: {exc.detail} with --change-role")
    return _fail(f"--{option}: {exc.detail}" if option else exc.detail)


@keys_app.command("create")
def create_api_key(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. the machine or laptop using it")],
    scopes: Annotated[str | None, typer.Option(help="Comma-separated; default: all partner scopes")] = None,
    role: Annotated[str | None, typer.Option(
        help="Makes a staff key; the role of a new person (--staff), or their current one")] = None,
    staff: Annotated[str | None, typer.Option(
        help="The person holding a staff key: e-mail or stable handle (case-insensitive); "
             "a second key for the same person counts as the same approver")] = None,
    staff_name: Annotated[str | None, typer.Option(help="Display name of a new person (default: the handle)")] = None,
    change_role: Annotated[bool, typer.Option(
        "--change-role", help="Give an existing person --role (for all their keys; audited)")] = False,
    database_url_: DbOption = None,
) -> None:
    """Create a key; prints only the key on stdout (shown once, stored hashed)."""
    from freezedesk.services.api_keys import create_key

    if role is not None and staff is None:
        raise _fail("--staff is required with --role: name the person holding the key, e.g. "
                    "--staff alice@exchange.example (their other keys count as the same person)")
    try:
        created = create_key(_store(database_url_), name,
                             [s.strip() for s in scopes.split(",") if s.strip()] if scopes else None, role,
                             staff_handle=staff, staff_name=staff_name, change_role=change_role)
    except DomainError as exc:
        raise _key_error(exc, role) from None
    typer.echo(f"key id {created.key_id}" + (f", staff {created.staff_id}" if created.staff_id else ""), err=True)
    typer.echo(created.key)


@keys_app.command("revoke")
def revoke_api_key(key_id: str, database_url_: DbOption = None) -> None:
    """Revoke a key by its id (key_…); every server stops accepting it."""
    from freezedesk.services.api_keys import revoke_key

    try:
        revoke_key(_store(database_url_), key_id)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    err.print(f"revoked {key_id}")


@keys_app.command("list")
def list_api_keys(database_url_: DbOption = None) -> None:
    """List keys (never the keys themselves), with the person holding each staff key."""
    from freezedesk.services.api_keys import list_keys

    for row in list_keys(_store(database_url_)):
        state = "revoked" if row["revoked_at"] else "active"
        typer.echo(f"{row['id']}  {state:7}  {row['role'] or 'partner':12}  {row['staff_handle'] or '-'}  "
                   f"{row['name']}  [{row['scopes']}]")


@staff_app.command("list")
def list_staff_members(database_url_: DbOption = None) -> None:
    """List the people holding staff keys: id, state, role, handle, name, active keys."""
    from freezedesk.services.api_keys import list_staff

    for row in list_staff(_store(database_url_)):
        state = "deactivated" if row["deactivated_at"] else "active"
        typer.echo(f"{row['id']}  {state:11}  {row['role']:12}  {row['handle']}  {row['name']}  "
                   f"{row['active_keys']} active keys")


@staff_app.command("deactivate")
def deactivate_staff_member(
    person: Annotated[str, typer.Argument(metavar="ID_OR_HANDLE", help="stf_… id, e-mail or handle")],
    database_url_: DbOption = None,
) -> None:
    """Deactivate a person: all their keys are revoked at once; every server stops accepting them."""
    from freezedesk.services.api_keys import deactivate_staff

    try:
        done = deactivate_staff(_store(database_url_), person)
    except DomainError as exc:
        raise _fail(exc.detail) from None
    typer.echo(f"deactivated {done.staff_id} ({done.handle}); {len(done.revoked_keys)} keys revoked"
               + (f": {', '.join(done.revoked_keys)}" if done.revoked_keys else ""), err=True)


@audit_app.command("verify")
def audit_verify(database_url_: DbOption = None) -> None:
    """Check the whole hash chain; exits 1 at the first broken entry."""
    from freezedesk.store import audit

    store = _store(database_url_)
    with store.read() as uow:
        result = audit.verify(uow.conn)
    if result.ok:
        typer.echo(f"OK: {result.entries} audit entries, chain intact")
        return
    typer.echo(f"BROKEN at entry {result.broken_seq}: {result.problem} ({result.entries} entries verified before it)")
    raise typer.Exit(1)


@lists_app.command("load")
def lists_load(sources: SourceOption, database_url_: DbOption = None) -> None:
    """Load list files into the database (atomically), report the changes, re-screen account holders."""
    from freezedesk.domain.restrictions import Actor
    from freezedesk.reference import load_catalogue
    from freezedesk.screening.model import ListFormatError
    from freezedesk.screening.service import ScreeningService

    service = ScreeningService(_store(database_url_), load_catalogue())
    service.reload()
    try:
        report = service.load_lists(sources, Actor("cli:lists-load"))
    except ListFormatError as exc:
        raise _fail(str(exc)) from None
    d = report.diff
    typer.echo(f"{report.entities} entities: {len(d.added)} added, {len(d.changed)} changed, "
               f"{len(d.removed)} removed; {report.accounts_rescreened} account holders re-screened, "
               f"{report.new_hits} new hits")


def _name_index(sources: list[str], database_url_: str | None):  # type: ignore[no-untyped-def]
    from freezedesk.screening.lists import load_snapshot
    from freezedesk.screening.matcher import NameIndex
    from freezedesk.screening.model import ListFormatError

    if sources:
        try:
            return NameIndex.build(load_snapshot(sources))
        except ListFormatError as exc:
            raise _fail(str(exc)) from None
    from freezedesk.reference import load_catalogue
    from freezedesk.screening.service import ScreeningService

    service = ScreeningService(_store(database_url_), load_catalogue())
    if not service.reload():
        raise _fail("no --source given and no lists loaded in the database (freezedesk lists load)")
    return service._require().names


@screen_app.command("batch")
def screen_batch(
    sources: SourceOption,
    input_file: Annotated[Path, typer.Option("--in", help="JSON lines {id, name, schema?, birth_date?, country?}")],
    output_file: Annotated[Path, typer.Option("--out", help="JSON lines {id, matches, elapsed_us}")],
    threshold: Annotated[float, typer.Option(help="Report matches at or above this score")] = 0.8,
) -> None:
    """Screen a file of names in memory (no database)."""
    from rich.progress import track

    from freezedesk.screening.batch import QueryFileError, read_queries, screen, write_atomically

    if not input_file.is_file():
        raise _fail(f"{input_file}: file not found")
    try:
        queries = read_queries(input_file)
    except QueryFileError as exc:
        raise _fail(str(exc)) from None
    index = _name_index(sources, None)
    results = screen(index, queries, threshold)
    count = write_atomically(output_file, iter(track(results, total=len(queries), description="screening",
                                                     console=err, transient=True)))
    err.print(f"{count} queries screened → {output_file}")


@screen_app.command("name")
def screen_name(
    name: str,
    sources: SourceOption = [],  # noqa: B006 (typer reads the default, never mutates it)
    schema: Annotated[str | None, typer.Option(help="person, organisation, vessel or aircraft")] = None,
    birth_date: Annotated[str | None, typer.Option(help="YYYY[-MM[-DD]]")] = None,
    country: Annotated[str | None, typer.Option(help="ISO alpha-2 nationality")] = None,
    threshold: Annotated[float, typer.Option()] = 0.8,
    database_url_: DbOption = None,
) -> None:
    """Screen one name (against --source files, or the lists loaded in the database)."""
    import json

    from freezedesk.screening.matcher import Query

    index = _name_index(sources, database_url_)
    for match in index.search(Query(name, schema, birth_date, country.upper() if country else None),
                              threshold=threshold):
        typer.echo(json.dumps({"entity_id": match.entity_id, "score": round(match.score, 4),
                               "matched_name": match.matched_name, "explanation": match.explanation},
                              ensure_ascii=False))


@events_app.command("ingest")
def events_ingest(
    file: Annotated[Path, typer.Argument(help="JSON Lines, or one JSON array (auto-detected)")],
    database_url_: DbOption = None,
) -> None:
    """Validate every event of FILE and store the new ones in one transaction.

    Any bad event rejects the whole file: every problem is printed as FILE:LINE: field 'x': message
    and the exit code is 2. Events already stored are skipped, so re-running a file is harmless.
    """
    from freezedesk.monitoring.events import EventValidationError, parse_batch
    from freezedesk.monitoring.ingest import ingest

    if not file.is_file():
        raise _fail(f"{file}: file not found")
    try:
        batch = parse_batch(file.read_text(encoding="utf-8"), source=str(file))
    except UnicodeDecodeError as exc:
        raise _fail(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except EventValidationError as exc:
        for line in exc.lines():  # every problem, so one pass fixes the file
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None
    result = ingest(_store(database_url_), batch, "cli:events-ingest", source=str(file))
    typer.echo(f"{result.accepted} events stored, {result.duplicates} duplicates skipped, "
               f"{result.accounts_registered} new accounts")


@app.command()
def synth(
    accounts: Annotated[int, typer.Option(help="Number of accounts")],
    days: Annotated[int, typer.Option(help="Number of days (at least 14)")],
    out: Annotated[Path, typer.Option(help="Events, JSON Lines sorted by time")],
    labels: Annotated[Path, typer.Option(help="account_id,label CSV (normal, decoy_<kind> or a typology)")],
    seed: Annotated[int, typer.Option(help="Same seed, same bytes")] = 1,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD (UTC)")] = "2025-01-01",
    address_list: Annotated[Path | None, typer.Option(
        help="Listed addresses, one per line (# comments); default: a few from ../shared/data/sanctions/ofac")] = None,
) -> None:
    """Generate synthetic activity with planted typologies and decoys (streamed; no database).

    Also writes the listed addresses it may have used to <labels stem>.addresses.txt.
    """
    import time
    from datetime import date

    from freezedesk.monitoring.synth import (
        SynthConfig,
        addresses_path,
        default_ofac_dir,
        generate,
        listed_from_file,
        listed_from_ofac,
    )
    from freezedesk.screening.model import ListFormatError

    try:
        first_day = date.fromisoformat(start)
    except ValueError:
        raise _fail(f"--start {start!r} is not a date YYYY-MM-DD") from None
    if address_list is not None:
        if not address_list.is_file():
            raise _fail(f"{address_list}: file not found")
        listed = listed_from_file(address_list)
    else:
        ofac = default_ofac_dir()
        if not ofac.is_dir():
            raise _fail(f"{ofac}: no OFAC list beside the checkout; give --address-list FILE")
        try:
            listed = listed_from_ofac(ofac)
        except ListFormatError as exc:
            raise _fail(str(exc)) from None
    try:
        config = SynthConfig(accounts=accounts, days=days, seed=seed, start=first_day, listed=listed)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    started = time.perf_counter()
    result = generate(config, out, labels)
    elapsed = time.perf_counter() - started
    err.print(f"{result.events} events for {result.accounts} accounts over {days} days → {out} "
              f"({result.events / elapsed:,.0f} events/s); labels → {labels}; "
              f"listed addresses → {addresses_path(labels)}", highlight=False)


@app.command()
def backtest(
    events: Annotated[Path, typer.Option(help="Events, JSON Lines (e.g. from freezedesk synth)")],
    out: Annotated[Path, typer.Option(help="Alerts, JSON Lines {account_id, rule_id, reason_code, ts, event_ids}")],
    rules: Annotated[Path | None, typer.Option(help="Rule pack YAML; default: the standard pack")] = None,
    address_list: Annotated[Path | None, typer.Option(help="Listed addresses, one per line (# comments)")] = None,
    labels: Annotated[Path | None, typer.Option(
        help="account_id,label CSV: adds precision/recall per rule (see monitoring.rules.scoring)")] = None,
    engine: Annotated[str, typer.Option(help="batch (DuckDB) or stream (the live engine); same alerts")] = "batch",
) -> None:
    """Run a rule pack over a file of past events: what would each rule have raised?

    Writes the alerts to --out (atomically: a failed run leaves no partial file), shows a progress
    bar on stderr and prints a summary per rule. Any bad input (missing file, malformed rule,
    bad event line) is reported with its file, line and field, and the exit code is 2.
    """
    import os
    import tempfile
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from freezedesk.monitoring.events import EventValidationError
    from freezedesk.monitoring.rules import RuleError, load_pack
    from freezedesk.monitoring.rules import backtest as run_backtest
    from freezedesk.monitoring.rules.scoring import LabelsError, load_labels, percent, score

    if engine not in ("batch", "stream"):
        raise _fail(f"--engine {engine!r} must be batch or stream")
    for given in (events, rules, address_list, labels):
        if given is not None and not given.is_file():
            raise _fail(f"{given}: file not found")
    try:
        pack = load_pack(rules)
        truth = load_labels(labels) if labels is not None else None
    except (RuleError, LabelsError) as exc:
        raise _fail(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise _fail(f"{rules or labels}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    alerts = []
    try:
        # stream: events processed; batch: one DuckDB query (the bar pulses, with the time elapsed)
        unit = "events" if engine == "stream" else "one query"
        with Progress(TextColumn(f"[bold]backtest[/] {engine} ({unit})"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task(engine, total=None)
            alerts = list(run_backtest(events, pack, address_list, engine,  # type: ignore[arg-type]
                                       progress=lambda done, total: bar.update(task, completed=done, total=total)))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(a.to_line() + "\n" for a in alerts)
        os.replace(tmp_name, out)
    except EventValidationError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        for line in exc.lines()[:50]:
            typer.echo(f"error: {line}", err=True)
        if len(exc.problems) > 50:
            typer.echo(f"error: ... and {len(exc.problems) - 50} more problems", err=True)
        raise typer.Exit(2) from None
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    elapsed = time.perf_counter() - started
    table = Table(title=f"{pack.name} pack on {events} ({engine}, {elapsed:.1f} s)")
    for column in ("rule", "alerts", "accounts", *(("precision", "recall") if truth is not None else ())):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for s in score(pack, alerts, truth):
        extra = (percent(s.precision), percent(s.recall)) if truth is not None else ()
        table.add_row(s.rule_id, str(s.alerts), str(s.accounts), *extra)
    Console(width=120).print(table)
    err.print(f"{len(alerts)} alerts → {out}", highlight=False)


NatsOption = Annotated[str, typer.Option("--nats", help="NATS server URL, e.g. nats://127.0.0.1:4222")]
StreamOption = Annotated[str, typer.Option(help="JetStream stream name")]
SubjectPrefixOption = Annotated[str, typer.Option(help="Subjects are PREFIX.<partition>")]
PartitionsOption = Annotated[int, typer.Option(help="Partitions (same for publishers and workers; ≥ workers)")]


@events_app.command("publish")
def events_publish(
    file: Annotated[Path, typer.Argument(help="JSON Lines, or one JSON array, in time order")],
    nats_url: NatsOption,
    stream: StreamOption = "FREEZEDESK_EVENTS",
    subject_prefix: SubjectPrefixOption = "freezedesk.events",
    partitions: PartitionsOption = 16,
    duplicate_window: Annotated[float, typer.Option(
        help="Seconds JetStream drops a re-published event id (applies when this creates the stream)")] = 120.0,
) -> None:
    """Validate FILE and publish each event to the JetStream stream, partitioned by account.

    The stream is created if missing. Events already in the stream's duplicate window (same
    event_id) are dropped by JetStream; later re-sends are stored, and the monitor workers skip
    them (--dedup-hours), so re-publishing a file is harmless. Any bad event rejects the whole file
    before anything is published (exit code 2).
    """
    import asyncio

    import nats

    from freezedesk.monitoring.events import EventValidationError, parse_batch
    from freezedesk.monitoring.jetstream import StreamLayout, ensure_stream, publish_events

    if not file.is_file():
        raise _fail(f"{file}: file not found")
    try:
        batch = parse_batch(file.read_text(encoding="utf-8"), source=str(file))
        layout = StreamLayout(stream, subject_prefix, partitions)
    except UnicodeDecodeError as exc:
        raise _fail(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except EventValidationError as exc:
        for line in exc.lines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        raise _fail(str(exc)) from None

    if not duplicate_window > 0:
        raise _fail(f"--duplicate-window must be a positive number of seconds, not {duplicate_window}")

    async def publish() -> tuple[int, int, float]:
        nc = await asyncio.wait_for(nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=0), 15)
        try:
            js = nc.jetstream()
            window = await ensure_stream(js, layout, duplicate_window)
            result = await publish_events(js, layout, batch)
            return result.published, result.duplicates, window
        finally:
            await nc.close()

    try:
        published, duplicates, window = asyncio.run(publish())
    except (OSError, TimeoutError, ValueError) as exc:
        raise _fail(f"{nats_url}: {exc}") from None
    if window != duplicate_window:
        typer.echo(f"note: stream {stream} exists with a duplicate window of {window:g} s; --duplicate-window "
                   "applies only when the stream is created", err=True)
    typer.echo(f"{published} events published to {stream}, {duplicates} duplicates dropped")


@app.command()
def monitor(
    nats_url: NatsOption,
    state_dir: Annotated[Path, typer.Option(help="Snapshots, alert files and status (persistent, private)")],
    worker: Annotated[int, typer.Option(help="This worker's index, 0-based")] = 0,
    workers: Annotated[int, typer.Option(help="Number of workers splitting the partitions")] = 1,
    stream: StreamOption = "FREEZEDESK_EVENTS",
    subject_prefix: SubjectPrefixOption = "freezedesk.events",
    partitions: PartitionsOption = 16,
    rules: Annotated[Path | None, typer.Option(help="Rule pack YAML; default: the standard pack")] = None,
    address_list: Annotated[Path | None, typer.Option(help="Listed addresses, one per line (# comments)")] = None,
    apply: Annotated[bool, typer.Option(
        help="Also apply alerts to the database (case evidence, holds, freezes) at --database-url, and store "
             "every counted event there (the events table) in the same transaction")] = False,
    database_url_: DbOption = None,
    batch: Annotated[int, typer.Option(help="Messages per fetch")] = 256,
    snapshot_every: Annotated[int, typer.Option(help="Snapshot a partition after this many events")] = 10_000,
    snapshot_seconds: Annotated[float, typer.Option(help="... or after this many seconds")] = 30.0,
    snapshot_min_seconds: Annotated[float, typer.Option(
        min=0, help="... or when caught up, but then at most once per this many seconds")] = 5.0,
    dedup_hours: Annotated[int, typer.Option(
        min=1, help="Hours of event time each partition remembers counted event ids: a re-sent one is skipped, "
                    "an event older than that behind the partition's latest is refused as late (listed in "
                    "STATE_DIR/refused/)")] = 168,
    halt_after_alerts: Annotated[int | None, typer.Option(hidden=True, help="Fault injection for tests")] = None,
    halt_after_events: Annotated[int | None, typer.Option(hidden=True, help="Fault injection for tests")] = None,
) -> None:
    """Consume the event stream from NATS JetStream and raise alerts — one worker of --workers.

    Worker I owns the partitions p with p % WORKERS == I. Alerts go to STATE_DIR/alerts/*.jsonl
    (one file per partition, the backtest format) and, with --apply, to the database, where every
    event the worker counts is stored too (the events table: what an alert's investigator reads),
    in the same transaction as the alerts of its fetch. State is
    snapshotted to STATE_DIR and rebuilt from the stream on restart: no event is lost or counted
    twice, and no alert is written twice. An event re-sent after JetStream's duplicate window is
    skipped by its event id; one older than --dedup-hours behind its partition's latest event is
    refused as late and listed in STATE_DIR/refused/. Stop with SIGTERM or Ctrl-C (a final snapshot
    is taken).
    """
    from freezedesk.monitoring.jetstream import StreamLayout
    from freezedesk.monitoring.rules import RuleError, load_address_list, load_pack
    from freezedesk.monitoring.worker import (
        AlertSink,
        DatabaseAlertSink,
        JsonlAlertSink,
        StreamMismatchError,
        TeeAlertSink,
        WorkerConfig,
        run_worker,
    )

    for given in (rules, address_list):
        if given is not None and not given.is_file():
            raise _fail(f"{given}: file not found")
    try:
        config = WorkerConfig(nats_url, worker, workers, state_dir, StreamLayout(stream, subject_prefix, partitions),
                              batch=batch, snapshot_every=snapshot_every, snapshot_seconds=snapshot_seconds,
                              snapshot_min_seconds=snapshot_min_seconds, dedup_hours=dedup_hours,
                              halt_after_alerts=halt_after_alerts, halt_after_events=halt_after_events)
        if apply:
            from freezedesk.reference import load_catalogue

            catalogue = load_catalogue()
            pack = load_pack(rules, known_reasons=frozenset(reason.code for reason in catalogue))
        else:
            pack = load_pack(rules)
        listed = load_address_list(address_list)
    except (RuleError, ValueError) as exc:
        raise _fail(str(exc)) from None
    alerts_dir = state_dir / "alerts"
    store = _store(database_url_) if apply else None
    if store is not None:
        try:
            DatabaseAlertSink(store, catalogue, pack).check_schema()
        except RuntimeError as exc:
            raise _fail(str(exc)) from None

    def sinks(partition: int) -> AlertSink:
        local = JsonlAlertSink(alerts_dir / f"partition-{partition:04d}.jsonl")
        if store is None:
            return local
        # one per partition (sharing the store's pool): the audit entry of a stored batch names it
        database = DatabaseAlertSink(store, catalogue, pack, source=f"nats:{stream}/partition-{partition:04d}")
        return TeeAlertSink(database, local)

    from sqlalchemy.exc import SQLAlchemyError

    try:
        # plain lines, never wrapped: operators grep the worker's log
        run_worker(config, pack, listed, sinks, log=lambda line: typer.echo(line, err=True))
    except (StreamMismatchError, RuntimeError, OSError, TimeoutError) as exc:
        raise _fail(str(exc) or type(exc).__name__) from None
    except SQLAlchemyError as exc:  # the database went away: stop; a restart replays from the last snapshot
        raise _fail(f"database: {type(exc).__name__}: {getattr(exc, 'orig', None) or exc}") from None


def main() -> None:
    try:
        app()
    except CatalogueError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
