"""`ido`: the operator's command line.

ido keys create --library CODE | --agency CODE [--kafka FILE] | --kb | --service NAME   print a credential
ido keys revoke CREDENTIAL_ID        every service refuses it from then on
ido keys list                        issued credentials, without secrets
ido keys rotate                      sign new credentials with a new key
ido topics apply [--check]           create missing topics, converge their configs, report drift
ido dlq list [--topic T]             what the consumers parked, and why
ido dlq redrive --topic T --id ID | --all   put parked records back on their topic, once
ido db setup                         create each service's role and database (idempotent)
ido db migrate [--service NAME]      apply the services' missing schema migrations
ido privacy erase --help-request ID  erase a visit's contact details and notes now
ido reporting rebuild                rebuild reporting's read models, with progress
ido schemas export DIR               write the event JSON Schemas
ido asyncapi                         print the AsyncAPI document
"""

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from shared import access, credentials, dlq, migrations, reference
from shared.auth import KeyStore, Role
from shared.db import setup_service_databases
from shared.events import asyncapi, catalog
from shared.kafka import apply_platform_topics, client_config, latest_offsets, referral_organisations
from shared.settings import REPO_ROOT, SERVICES, InfraSettings

# An operator command's own credential: long enough for a rebuild, no longer.
OPERATOR_VALIDITY = timedelta(hours=2)


def _keys_create(args: argparse.Namespace, settings: InfraSettings) -> int:
    role: Role
    if args.library:
        role, org, known = "library", args.library, set(reference.PILOT_LIBRARIES)
    elif args.agency:
        role, org, known = "agency", args.agency, _receiving_organisations(args, settings)
    elif args.service:
        role, org, known = "service", args.service, {"routing"}
    else:
        role, org, known = "kb", "kb", {"kb"}
    if org not in known:
        print(f"ido: unknown {role} code '{org}'; known: {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    if args.kafka and role != "agency":
        print("ido: --kafka is for a receiving organisation (--agency CODE)", file=sys.stderr)
        return 2
    valid_for = timedelta(days=args.days or settings.credential_days)
    principal = access.organisation_principal(org) if args.kafka else None
    credential_id, token = asyncio.run(
        credentials.create(settings, role, org, valid_for=valid_for, kafka_principal=principal)
    )
    until = datetime.now(UTC) + valid_for
    print(
        f"ido: credential {credential_id} for {role} {org}, valid until {until:%Y-%m-%d}; keep it secret",
        file=sys.stderr,
    )
    if principal is not None:
        _issue_kafka_credential(settings, principal, org, Path(args.kafka))
    print(token)
    return 0


def _receiving_organisations(args: argparse.Namespace, settings: InfraSettings) -> set[str]:
    """The agencies, and the local partners the KB added to routing (asked only when needed)."""
    if args.agency in reference.AGENCIES:
        return set(reference.AGENCIES)
    try:
        answer = httpx.get(
            f"{args.routing_url}/v1/organisations",
            headers={"Authorization": f"Bearer {_operator_credential(settings)}"},
            timeout=30,
        )
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"ido: routing could not say which partners exist ({exc})", file=sys.stderr)
        return set(reference.AGENCIES)
    return set(reference.AGENCIES) | {o["code"] for o in answer.json()}


def _issue_kafka_credential(settings: InfraSettings, principal: str, organisation: str, path: Path) -> None:
    """A broker principal that may only read the organisation's referral topic, and its client
    configuration written to `path` (0600)."""
    broker = _broker_access(settings)
    password = access.new_password()
    broker.set_user(principal, password)
    broker.converge(principal, access.organisation_grants(principal, organisation))
    path.touch(mode=0o600)
    path.write_text(client_config().properties(settings.kafka_bootstrap_servers, principal, password))
    topic = catalog.referral_topic(organisation)
    print(f"ido: Kafka principal {principal} may read {topic}; client configuration in {path}", file=sys.stderr)


def _broker_access(settings: InfraSettings) -> access.BrokerAccess:
    return access.BrokerAccess(settings.kafka_bootstrap_servers, client_config())


def _operator_credential(settings: InfraSettings) -> str:
    """One short-lived KB credential for this run of an operator command (on the record, like
    every credential), rather than a permanent one minted each time."""
    _, token = asyncio.run(credentials.create(settings, "kb", "kb", valid_for=OPERATOR_VALIDITY))
    return token


def _keys_revoke(args: argparse.Namespace, settings: InfraSettings) -> int:
    revoked = asyncio.run(credentials.revoke(settings, args.credential_id))
    if revoked is None:
        print(f"ido: no credential {args.credential_id} was ever issued", file=sys.stderr)
        return 1
    print(f"ido: revoked {args.credential_id} ({revoked['role']} {revoked['organisation']})", file=sys.stderr)
    if principal := revoked.get("kafka_principal"):
        broker = _broker_access(settings)
        broker.remove(principal)
        broker.delete_user(principal)
        print(f"ido: Kafka principal {principal} and its ACLs removed", file=sys.stderr)
    return 0


def _keys_list(_: argparse.Namespace, settings: InfraSettings) -> int:
    issued = asyncio.run(credentials.registry(settings.kafka_bootstrap_servers))
    print(f"{'credential':36}  {'role':7}  {'organisation':22}  {'issued':20}  {'expires':20}  {'revoked':20}  kafka")
    for credential_id, c in sorted(issued.items(), key=lambda kv: kv[1].get("issued_at", "")):
        issued_at, revoked_at = c.get("issued_at", "?")[:19], c.get("revoked_at", "-")[:19]
        expires_at = (c.get("expires_at") or "never")[:19]
        print(
            f"{credential_id:36}  {c['role']:7}  {c['organisation']:22}  {issued_at:20}  {expires_at:20}  "
            f"{revoked_at:20}  {c.get('kafka_principal') or '-'}"
        )
    return 0


def _keys_rotate(_: argparse.Namespace, settings: InfraSettings) -> int:
    kid, _key = KeyStore(settings.credential_keys_dir).rotate()
    print(f"ido: new credentials are signed with key {kid}; older credentials stay valid", file=sys.stderr)
    return 0


def _topics_apply(args: argparse.Namespace, settings: InfraSettings) -> int:
    report = asyncio.run(apply_platform_topics(settings, compare=True, fix=not args.check))
    for line in report.drift:
        print(f"  drift: {line}", file=sys.stderr)
    for topic in report.created:
        print(f"  created {topic}", file=sys.stderr)
    for topic in report.altered:
        print(f"  configs set on {topic}", file=sys.stderr)
    verdict = "drift found" if args.check and report.drift else "as defined"
    print(
        f"ido: topics {verdict}: {len(report.created)} created, {len(report.altered)} changed, "
        f"{len(report.drift)} differences found",
        file=sys.stderr,
    )
    access_drift = _access_apply(args, settings)
    return 1 if args.check and (report.drift or access_drift) else 0


def _access_apply(args: argparse.Namespace, settings: InfraSettings) -> bool:
    """The services' principals and ACLs as defined; True if they differed."""
    if not client_config().authenticates:
        print("ido: the broker does not authenticate: no principals or ACLs to apply", file=sys.stderr)
        return False
    report = access.apply_service_access(
        _broker_access(settings),
        client_config(),
        settings.kafka_bootstrap_servers,
        settings.kafka_clients_dir,
        fix=not args.check,
    )
    for grant in report.granted:
        print(f"  {'missing' if args.check else 'granted'}: {grant}", file=sys.stderr)
    for grant in report.removed:
        print(f"  {'undefined' if args.check else 'removed'}: {grant}", file=sys.stderr)
    print(
        f"ido: {len(report.principals)} service principals; {len(report.granted)} ACLs "
        f"{'missing' if args.check else 'granted'}, {len(report.removed)} "
        f"{'not defined' if args.check else 'removed'}",
        file=sys.stderr,
    )
    return bool(report.granted or report.removed)


def _dlq_topics(args: argparse.Namespace, settings: InfraSettings) -> list[str]:
    """The topics whose DLQ to look at: the one named, else every platform topic's that holds any."""
    if args.topic:
        return [args.topic.removesuffix(".dlq")]
    organisations = asyncio.run(referral_organisations(settings.kafka_bootstrap_servers))
    topics = [t for t in catalog.all_topics(sorted(set(reference.AGENCIES) | organisations)) if not t.endswith(".dlq")]
    dlqs = [catalog.dlq_topic(t) for t in topics]
    ends = asyncio.run(latest_offsets(settings.kafka_bootstrap_servers, dlqs))
    holding = {tp.topic for tp, end in ends.items() if end}
    return [t for t in topics if catalog.dlq_topic(t) in holding]


def _dlq_list(args: argparse.Namespace, settings: InfraSettings) -> int:
    total = waiting = 0
    print(f"{'topic':28}  {'id':9}  {'parked at':20}  {'event type':32}  {'event id':36}  {'status':22}  reason")
    for topic in _dlq_topics(args, settings):
        for p in asyncio.run(dlq.parked(settings.kafka_bootstrap_servers, topic)):
            total += 1
            waiting += p.redriven_at is None
            status = f"redriven {p.redriven_at}" if p.redriven_at else "parked"
            print(
                f"{p.topic:28}  {p.id:9}  {p.parked_at:%Y-%m-%d %H:%M:%S}     {p.event_type[:32]:32}  "
                f"{p.event_id[:36]:36}  {status:22}  {p.consumer}: {p.reason[:200]}"
            )
    print(f"ido: {total} dead-lettered records, {waiting} parked (not redriven)", file=sys.stderr)
    return 0


def _dlq_redrive(args: argparse.Namespace, settings: InfraSettings) -> int:
    topic = args.topic.removesuffix(".dlq")
    done = asyncio.run(dlq.redrive(settings.kafka_bootstrap_servers, topic, None if args.all else args.id))
    for record_id in done.redriven:
        print(f"  redriven {record_id} to {topic}", file=sys.stderr)
    for record_id in done.already:
        print(f"  {record_id} was redriven before; left", file=sys.stderr)
    for record_id in done.unknown:
        print(f"  no record {record_id} in {catalog.dlq_topic(topic)}", file=sys.stderr)
    print(
        f"ido: {len(done.redriven)} redriven, {len(done.already)} redriven before, {len(done.unknown)} not found",
        file=sys.stderr,
    )
    return 1 if done.unknown else 0


def _db_setup(_: argparse.Namespace, settings: InfraSettings) -> int:
    created = asyncio.run(setup_service_databases(settings))
    print(f"ido: {len(SERVICES)} service databases present, {len(created)} objects created", file=sys.stderr)
    for what in created:
        print(f"  created {what}", file=sys.stderr)
    return 0


def _db_migrate(args: argparse.Namespace, settings: InfraSettings) -> int:
    for service in [args.service] if args.service else SERVICES:
        url = os.environ.get(f"{service.upper()}_DATABASE_URL") or settings.service_database_url(service)
        applied = migrations.apply(url, settings.pgpassfile, REPO_ROOT / "services" / service / "migrations")
        print(f"ido: {service}: {len(applied)} migrations applied {' '.join(applied)}", file=sys.stderr)
    return 0


def _schemas_export(args: argparse.Namespace, _: InfraSettings) -> int:
    out = Path(args.directory)
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in catalog.json_schemas().items():
        (out / f"{name}.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    print(f"ido: wrote {len(catalog.EVENT_TYPES)} schemas to {out}", file=sys.stderr)
    return 0


def _privacy_erase(args: argparse.Namespace, settings: InfraSettings) -> int:
    """Erase through intake's API, as the KB, so the erasure takes the one path every erasure takes."""
    token = _operator_credential(settings)
    response = httpx.delete(
        f"{args.intake_url.rstrip('/')}/v1/help-requests/{args.help_request}/personal-data",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if response.status_code != 200:
        print(f"ido: erasure failed: {response.status_code} {response.text}", file=sys.stderr)
        return 1
    erased_at = response.json()["personal_data_erased_at"]
    print(f"ido: personal data of {args.help_request} erased at {erased_at}", file=sys.stderr)
    return 0


def _reporting_rebuild(args: argparse.Namespace, settings: InfraSettings) -> int:
    """Start a rebuild of reporting's read models and show its progress until it is done."""
    token = _operator_credential(settings)
    with httpx.Client(base_url=args.reporting_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        started = http.post("/v1/admin/rebuild")
        if started.status_code != 202:
            problem = started.json() if "json" in started.headers.get("content-type", "") else {}
            reason = problem.get("detail") or problem.get("title") or started.text
            print(f"ido: rebuild not started ({started.status_code}): {reason}", file=sys.stderr)
            return 1
        while (status := http.get("/v1/admin/rebuild").json())["state"] == "running":
            done, total = status["processed"], max(status["total"], 1)
            filled = int(30 * done / total)
            print(
                f"\r  rebuilding [{'#' * filled}{'.' * (30 - filled)}] {done}/{status['total']} events",
                end="",
                file=sys.stderr,
            )
            time.sleep(0.5)
    print(
        f"\nido: rebuild {status['state']}: {status['processed']} events; active read models: {status['active']}",
        file=sys.stderr,
    )
    return 0 if status["state"] == "done" else 1


def _asyncapi(_: argparse.Namespace, __: InfraSettings) -> int:
    print(json.dumps(asyncapi.document(), indent=2, sort_keys=True))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ido", description="Operate the IDO platform.")
    sub = p.add_subparsers(dest="command", required=True)

    keys = sub.add_parser("keys", help="API credentials").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="print a new credential as the only line on stdout")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--library", metavar="CODE")
    who.add_argument("--agency", metavar="CODE", help="an agency, or a local partner routing knows")
    who.add_argument("--kb", action="store_true", help="a credential for KB staff")
    who.add_argument("--service", metavar="NAME", help="a credential for a platform service (routing)")
    create.add_argument(
        "--kafka",
        metavar="FILE",
        help="also a Kafka credential that may read only the organisation's referral topic; its client config to FILE",
    )
    create.add_argument("--routing-url", default=os.environ.get("ROUTING_URL", "http://127.0.0.1:8002"))
    create.add_argument(
        "--days", type=int, choices=range(1, 3651), metavar="DAYS", help="valid for (IDO_CREDENTIAL_DAYS)"
    )
    create.set_defaults(run=_keys_create)
    revoke = keys.add_parser("revoke", help="revoke a credential on every service")
    revoke.add_argument("credential_id")
    revoke.set_defaults(run=_keys_revoke)
    keys.add_parser("list", help="issued credentials, without secrets").set_defaults(run=_keys_list)
    keys.add_parser("rotate", help="sign new credentials with a new key").set_defaults(run=_keys_rotate)

    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(dest="action", required=True)
    apply = topics.add_parser(
        "apply",
        help="topics, their configs, the services' principals and ACLs as shared/events/topics.toml defines; "
        "report drift",
    )
    apply.add_argument("--check", action="store_true", help="only report differences (exit 1 if any)")
    apply.set_defaults(run=_topics_apply)

    dead = sub.add_parser("dlq", help="dead-lettered records").add_subparsers(dest="action", required=True)
    listing = dead.add_parser("list", help="what the consumers parked, and why (never the event's data)")
    listing.add_argument("--topic", help="one topic's DLQ (default: every DLQ that holds records)")
    listing.set_defaults(run=_dlq_list)
    again = dead.add_parser("redrive", help="put parked records back on their topic, each once")
    again.add_argument("--topic", required=True)
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append", metavar="PARTITION-OFFSET", help="a record (repeatable)")
    which.add_argument("--all", action="store_true", help="every record not redriven before")
    again.set_defaults(run=_dlq_redrive)

    db = sub.add_parser("db", help="PostgreSQL").add_subparsers(dest="action", required=True)
    db.add_parser("setup", help="create each service's role and database").set_defaults(run=_db_setup)
    migrate = db.add_parser("migrate", help="apply the missing schema migrations")
    migrate.add_argument("--service", choices=SERVICES)
    migrate.set_defaults(run=_db_migrate)

    schemas = sub.add_parser("schemas", help="event JSON Schemas").add_subparsers(dest="action", required=True)
    export = schemas.add_parser("export", help="write one JSON Schema per event type")
    export.add_argument("directory")
    export.set_defaults(run=_schemas_export)
    privacy = sub.add_parser("privacy", help="personal data").add_subparsers(dest="action", required=True)
    erase = privacy.add_parser("erase", help="erase a visit's contact details and notes now (AVG art. 17)")
    erase.add_argument("--help-request", required=True, metavar="ID")
    erase.add_argument("--intake-url", default=os.environ.get("INTAKE_URL", "http://127.0.0.1:8001"))
    erase.set_defaults(run=_privacy_erase)
    reporting = sub.add_parser("reporting", help="reporting's read models").add_subparsers(dest="action", required=True)
    rebuild = reporting.add_parser("rebuild", help="rebuild the read models from the start of every topic")
    rebuild.add_argument("--reporting-url", default=os.environ.get("REPORTING_URL", "http://127.0.0.1:8005"))
    rebuild.set_defaults(run=_reporting_rebuild)
    sub.add_parser("asyncapi", help="print the AsyncAPI document of all topics").set_defaults(run=_asyncapi)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args, InfraSettings())


if __name__ == "__main__":
    sys.exit(main())
