"""`emotions annotate allocate | push | pull | simulate | status | consistency | drop | move | credentials | revoke |
migrate-server`: thin commands over the `annotation` package. The server is any Label Studio (`annotation.deployment`:
the dataset remembers it); its secrets come from the environment or the config file (see `emotions annotate
server`), never from options, and passwords only ever go to a 0600 file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from emotions_cli.console import fail, failure, local_folder
from emotions_cli.console import stdout as out
from emotions_cli.params import SEED, integers, number, reals

workflow_app = typer.Typer(no_args_is_help=True)

DatasetArg = Annotated[Path, typer.Argument(help="dataset folder", callback=local_folder)]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML with a `label_studio` table")]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="data folder of a server the toolkit runs (default: the dataset's)")
]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="another Label Studio's base URL (its token from EMOTIONS_LS_TOKEN or the config)"),
]
TaxonomyOpt = Annotated[str, typer.Option(help="'emotions6' or a taxonomy TOML")]
#: Agreement is a share of votes or of items.
SHARE = reals(0.0, 1.0)
#: A panel is a handful of people; thousands of votes on one clip is a typo.
VOTES = integers(1, 1000, "votes on one item")
GROUPS = integers(1, 1000, "groups of annotators")


def _server(dataset: Path | None, config: Path | None, data_dir: Path | None, url: str | None):
    """The server config for a command on `dataset` (see `annotation.deployment.resolve_server`)."""
    from annotation.deployment import resolve_server
    from annotation.server_record import moved_note
    from emotions_cli.console import say
    from emotions_data.layout import DatasetLayout

    layout = DatasetLayout(dataset) if dataset is not None else None
    server = resolve_server(layout, config, data_dir, url)
    note = moved_note(layout) if layout is not None else None
    if note:
        say(note)
    return server


def _client(dataset: Path | None, config: Path | None, data_dir: Path | None, url: str | None = None):
    from annotation.labelstudio.client import LabelStudio

    return LabelStudio(_server(dataset, config, data_dir, url))


def _run(fn, dataset: Path | None = None):
    """Run a workflow step; its known failures become one-line errors, and a folder it cannot write (read-only, full
    disk) is named: its file, else `dataset`."""
    from annotation.labelstudio.config import ServerError

    try:
        return fn()
    except (ValueError, ServerError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise failure(exc, dataset) from None


@workflow_app.command()
def allocate(
    dataset: DatasetArg,
    roster: Annotated[Path, typer.Option(help="annotators.csv (id, name, email and the five attributes)")],
    groups: Annotated[int, number(bounds=GROUPS, help="number of groups")] = 3,
    seed: Annotated[int, number(bounds=SEED)] = 0,
    no_accounts: Annotated[bool, typer.Option("--no-accounts", help="do not create Label Studio accounts")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    url: UrlOpt = None,
) -> None:
    """Split annotators into balanced groups, share the videos out, create the accounts."""
    from annotation.allocation_step import allocate as run
    from emotions_data.layout import DatasetLayout

    report = _run(lambda: run(DatasetLayout(dataset), roster, groups, seed,
                              None if no_accounts else _client(dataset, config, data_dir, url)), dataset)  # fmt: skip
    table = Table(
        title=f"balance per group (imbalance {report.imbalance:.2f}; random split ~{report.random_imbalance:.2f})"
    )
    table.add_column("group")
    for col in report.balance.columns:
        table.add_column(str(col), justify="right")
    for group, row in report.balance.iterrows():
        table.add_row(str(group), *(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)
    for group, members in report.groups.items():
        out.print(f"group {group}: {', '.join(members)}  ({report.videos_per_group.get(group, 0)} videos)")
    if report.experts:
        out.print(f"experts: {', '.join(report.experts)}")
    if report.kept:
        line = f"the allocation on record is kept: {len(report.kept)} annotator(s) keep their group"
        if report.dropped:
            line += f"; still dropped: {', '.join(report.dropped)} ('annotate move' brings one back)"
        if report.placed:
            line += f"; new: {', '.join(report.placed)}"
        out.print(line, highlight=False, soft_wrap=True)


@workflow_app.command()
def push(
    dataset: DatasetArg,
    stage: Annotated[str, typer.Option(help="label, crosscheck, relabel, crosscheck2 or expert")],
    votes_per_item: Annotated[int, number(bounds=VOTES, help="votes per item (label, crosscheck, crosscheck2)")] = 3,
    min_agreement: Annotated[
        float, number(bounds=SHARE, help="expert stage: items under this agreement (a share of votes) go too")
    ] = 0.5,
    taxonomy: TaxonomyOpt = "emotions6",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    url: UrlOpt = None,
    suspects: Annotated[
        int | None,
        number(
            bounds=integers(1),
            help="expert stage: also the first N suspect labels of `emotions validate` (the model disputes the label)",
        ),
    ] = None,
) -> None:
    """Create or update the stage's Label Studio projects and import the missing tasks."""
    from annotation.push import push as run
    from emotions_data.layout import DatasetLayout
    from emotions_data.taxonomy import resolve_taxonomy

    if suspects is not None:
        from emotions_data.suspects import request_expert_review

        if stage != "expert" or suspects < 1:
            raise fail("--suspects N (N >= 1) goes with --stage expert")
        queued = _run(lambda: request_expert_review(DatasetLayout(dataset), top=suspects))
        out.print(f"{queued} suspect label(s) queued for the expert (the model disputes the label)")
    report = _run(lambda: run(DatasetLayout(dataset), stage, _client(dataset, config, data_dir, url),
                              resolve_taxonomy(taxonomy), votes_per_item=votes_per_item,
                              min_agreement=min_agreement), dataset)  # fmt: skip
    if report.settled.line():
        out.print(report.settled.line(), highlight=False, soft_wrap=True)
    for key, n in report.imported.items():
        out.print(f"{key}: {n} new task(s)")
    for key, n in report.returned.items():
        out.print(f"{key}: {n} item(s) back to the expert (a new round: their earlier votes changed or experts differ)")
    for key, n in report.refreshed.items():
        out.print(f"{key}: earlier votes refreshed on {n} item(s) not yet decided")
    for key, n in report.repointed.items():
        out.print(f"{key}: {n} task(s) now load their clip from the dataset's current place")
    for key, fields in report.restored.items():
        out.print(f"{key}: settings changed in Label Studio ({', '.join(fields)}): restored", highlight=False)
    for key, ids in report.tampered.items():
        out.print(f"{key}: task(s) {', '.join(map(str, ids))} hold other data than push made: left as they are, "
                  "votes on them not counted (see the pull report)", highlight=False, soft_wrap=True)  # fmt: skip
    for key, ids in report.foreign.items():
        out.print(f"{key}: task(s) {', '.join(map(str, ids))} not made by push: left as they are, votes on them not "
                  "counted", highlight=False, soft_wrap=True)  # fmt: skip
    for key, n in report.already_voted.items():
        out.print(f"{key}: {n} item(s) not asked again: their annotator's vote is on record", highlight=False)
    for key, n in report.adopted.items():
        out.print(f"{key}: {n} task(s) of an earlier push recorded", highlight=False)
    if report.invite_link_disabled:
        out.print("the organization's invite link was enabled: disabled")
    for vid, path in report.missing_media.items():
        out.print(f"missing media file, not pushed: {path} ({vid})", highlight=False, soft_wrap=True)
    if report.missing_media:
        raise fail(f"{len(report.missing_media)} clip(s) not pushed: their media file is missing (listed above)")


@workflow_app.command()
def pull(dataset: DatasetArg, taxonomy: TaxonomyOpt = "emotions6", config: ConfigOpt = None,
         data_dir: DataDirOpt = None, url: UrlOpt = None) -> None:  # fmt: skip
    """Export every project into manifests/votes.parquet (idempotent); what is not counted, and why, goes to
    manifests/pull_report.json and is summed up here."""
    from annotation.pull import pull as run
    from emotions_data.layout import DatasetLayout
    from emotions_data.taxonomy import resolve_taxonomy

    report = _run(
        lambda: run(DatasetLayout(dataset), _client(dataset, config, data_dir, url), resolve_taxonomy(taxonomy)),
        dataset,
    )
    out.print(f"votes: {report.n_votes} ({report.n_new} new, {report.n_updated} re-read, {report.n_edited} edited by "
              f"their annotator, {report.n_deleted} deleted in Label Studio, {report.n_restored} restored)",
              soft_wrap=True)  # fmt: skip
    print_pull_report(report)


def print_pull_report(report) -> None:
    """The pull report's summary: what was not counted (per reason, then each), deleted and drifted projects."""
    if report.settled_push:
        out.print(report.settled_push, highlight=False, soft_wrap=True)
    for key in report.deleted_projects:
        out.print(f"project {key} was deleted in Label Studio: its votes stay as last pulled", highlight=False)
    for key, fields in report.drifted_projects.items():
        out.print(f"project {key}: settings changed in Label Studio ({', '.join(fields)}); push restores them",
                  highlight=False)  # fmt: skip
    for key, why in report.halted_projects.items():
        out.print(f"project {key}: {why}", highlight=False, soft_wrap=True)
    for finding in report.tasks:
        out.print(finding.line(), highlight=False, soft_wrap=True)
    if report.invite_link_was_enabled:
        out.print("the organization's invite link had been enabled: disabled again", highlight=False)
    if report.excluded:
        summary = ", ".join(f"{reason}: {n}" for reason, n in report.summary().items())
        out.print(f"not counted: {len(report.excluded)} annotation(s) ({summary}); details in {report.path}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    for item in report.excluded:
        out.print(f"  not counted ({item.reason}): {item.detail} [{item.video_id}, project {item.project}, "
                  f"annotation {item.ls_annotation_id}]", highlight=False, soft_wrap=True)  # fmt: skip


@workflow_app.command()
def simulate(
    dataset: DatasetArg,
    stage: Annotated[str, typer.Option(help="label, crosscheck, relabel or expert")],
    votes_per_item: Annotated[int, number(bounds=VOTES)] = 3,
    seed: Annotated[int, number(bounds=SEED)] = 0,
    careless: Annotated[str | None, typer.Option(help="this annotator also double-votes and votes elsewhere")] = None,
    taxonomy: TaxonomyOpt = "emotions6",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    url: UrlOpt = None,
) -> None:
    """Answer the stage's tasks with a simulated panel, through the Label Studio API (the next pull reports what
    a --careless annotator did and does not count it)."""
    from annotation.simulate import simulate as run
    from emotions_data.layout import DatasetLayout
    from emotions_data.taxonomy import resolve_taxonomy

    report = _run(lambda: run(DatasetLayout(dataset), stage, _client(dataset, config, data_dir, url),
                              resolve_taxonomy(taxonomy), votes_per_item=votes_per_item, seed=seed,
                              careless=careless))  # fmt: skip
    out.print(f"posted {report.posted} annotation(s); weaker simulated annotators: {', '.join(report.weak) or 'none'}")
    for slip in report.careless:
        out.print(f"careless: {slip}", highlight=False)


@workflow_app.command()
def status(
    dataset: DatasetArg,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object, for scripts")] = False,
) -> None:
    """Campaign progress as of the last pull, per stage, group and annotator: done, remaining, median lead time,
    votes submitted sooner than the clip lasts; what holds the campaign up, and the next command to run."""
    import json

    from annotation.progress import campaign_progress
    from emotions_data.layout import DatasetLayout

    progress = _run(lambda: campaign_progress(DatasetLayout(dataset)))
    if as_json:
        print(json.dumps(progress.to_dict()))
        return
    server = progress.server
    out.print(f"server: {server['url']} ({server['server_id']})" if server else "server: none contacted yet",
              highlight=False)  # fmt: skip
    out.print(f"votes as of the pull at {progress.pulled_at}" if progress.pulled_at else "never pulled",
              highlight=False)  # fmt: skip
    for stage in progress.stages:
        table = Table(title=f"{stage.stage}: {stage.done}/{stage.assigned} done, {stage.remaining} remaining"
                      + (" (complete)" if stage.complete else ""))  # fmt: skip
        for col in ("group", "annotator", "done", "remaining", "median lead s", "shorter than clip"):
            table.add_column(col)
        for r in (r for r in progress.annotators if r.stage == stage.stage):
            group = r.group + (f" (items of {r.items_of})" if r.items_of else "")
            table.add_row(group, r.annotator + ("" if r.active else " (dropped)"), str(r.done), str(r.remaining),
                          "" if r.median_lead_s is None else f"{r.median_lead_s:.1f}",
                          str(r.shorter_than_clip) if r.shorter_than_clip else "")  # fmt: skip
        out.print(table)
        groups = [g for g in progress.groups if g.stage == stage.stage]
        out.print("  " + "; ".join(f"group {g.group or '(experts)'}: {g.done}/{g.assigned} done, {g.remaining} "
                                   "remaining" for g in groups), highlight=False, soft_wrap=True)  # fmt: skip
    for line in progress.blocked:
        out.print(f"blocked: {line}", highlight=False, soft_wrap=True)
    out.print(f"next: {progress.next_command}", highlight=False, soft_wrap=True)


@workflow_app.command()
def consistency(
    dataset: DatasetArg,
    threshold: Annotated[float, number(bounds=SHARE, help="flag annotators agreeing less with the cross-check")] = 0.6,
    round_: Annotated[
        int, number("--round", bounds=integers(1, 2), help="1, or 2: the re-evaluation against crosscheck2")
    ] = 1,
) -> None:
    """Per annotator and group: agreement with the cross-check and the consensus; flags and next steps."""
    from annotation.consistency import evaluate_consistency
    from annotation.votes import kept_votes, read_vote_table
    from emotions_data.layout import DatasetLayout
    from emotions_data.schema import Stage
    from emotions_data.storage import recover_commits

    layout = DatasetLayout(dataset)
    stage = Stage.CROSSCHECK if round_ == 1 else Stage.CROSSCHECK2
    recover_commits(layout.root)  # a pull commits the vote table with its history and report
    if not layout.votes.exists():
        raise fail(f"{layout.votes}: no such file")
    votes = read_vote_table(layout)
    # Deleted annotations and superseded decisions do not count; dropped annotators' votes do: they are who the
    # evaluation is about.
    votes = kept_votes(votes)
    result = _run(lambda: evaluate_consistency(votes, threshold, stage))
    table = Table(title=f"annotators (flagged under {threshold:.2f} agreement with the cross-check)")
    for col in ("annotator", "group", "votes", "vs cross-check", "vs consensus", "flagged"):
        table.add_column(col)
    for ann, row in result.annotators.iterrows():
        table.add_row(str(ann), str(row["group"]), str(row["n_votes"]), f"{row['crosscheck_agreement']:.2f}",
                      f"{row['consensus_agreement']:.2f}", "yes" if row["flagged"] else "")  # fmt: skip
    out.print(table)
    out.print(result.groups.round(3).to_string())
    flagged = list(result.annotators.index[result.annotators["flagged"]])
    if flagged:
        out.print(f"{len(result.flagged_items)} item(s) carry votes of flagged annotators. Next steps:")
        for ann in flagged:
            out.print(f"  emotions annotate drop {dataset} {ann}    (or: move {dataset} {ann} --to GROUP)")
        out.print(
            f"  then re-run their items: emotions labels {dataset} && emotions annotate push {dataset} --stage expert"
        )


@workflow_app.command()
def drop(dataset: DatasetArg, annotator: Annotated[str, typer.Argument()], config: ConfigOpt = None,
         data_dir: DataDirOpt = None, url: UrlOpt = None) -> None:  # fmt: skip
    """Drop an annotator: no new tasks, their votes stop counting, and their Label Studio account is deactivated
    with its token and sessions revoked."""
    from annotation.credentials import drop as run
    from emotions_data.layout import DatasetLayout

    server = _run(lambda: _server(dataset, config, data_dir, url))
    deactivated = _run(lambda: run(DatasetLayout(dataset), annotator, server), dataset)
    out.print(f"{annotator} dropped" + ("; account deactivated, token and sessions revoked" if deactivated else
                                         " (no Label Studio account)"))  # fmt: skip


@workflow_app.command()
def move(dataset: DatasetArg, annotator: Annotated[str, typer.Argument()],
         to: Annotated[str, typer.Option("--to", help="target group")]) -> None:  # fmt: skip
    """Move an annotator to another group (for the projects pushed next; votes cast keep their group)."""
    from annotation.annotators import set_active
    from emotions_data.layout import DatasetLayout

    _run(lambda: set_active(DatasetLayout(dataset), annotator, True, group=to), dataset)
    out.print(f"{annotator} moved to group {to}")


@workflow_app.command()
def credentials(
    dataset: DatasetArg,
    annotator: Annotated[list[str] | None, typer.Option("--annotator", help="only these (default: all active)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    url: UrlOpt = None,
) -> None:
    """Issue (or reset) the annotators' passwords; writes them to a 0600 file, never to the screen. A reset ends
    the old password, API tokens and browser sessions at once."""
    from annotation.credentials import issue_credentials
    from annotation.labelstudio.client import LabelStudio
    from annotation.labelstudio.config import default_data_dir
    from annotation.server_record import check_server
    from emotions_data.layout import DatasetLayout

    layout = DatasetLayout(dataset)
    server = _run(lambda: _server(dataset, config, data_dir, url))
    # next to the admin's own credentials: the data folder of a server the toolkit runs, else the user's own folder,
    # one sub-folder per server (its identity), so two servers' files never overwrite each other
    if server.base_url is None:
        out_dir = server.data_dir
    else:
        server_id, _ = _run(lambda: check_server(layout, LabelStudio(server)))
        out_dir = default_data_dir().parent / "annotator-credentials" / server_id
    path = _run(lambda: issue_credentials(layout, server, out_dir, annotator))
    out.print(f"logins and passwords: {path} (readable by you only); hand each annotator theirs. Each logs in and "
              "opens the project titled '<dataset> · <stage> · <their id> ...'")  # fmt: skip


@workflow_app.command()
def revoke(dataset: DatasetArg, annotator: Annotated[str, typer.Argument()], config: ConfigOpt = None,
           data_dir: DataDirOpt = None, url: UrlOpt = None) -> None:  # fmt: skip
    """Deactivate an annotator's Label Studio account and revoke its token and sessions (votes stay counted;
    `credentials --annotator ID` gives the account back)."""
    from annotation.credentials import revoke_credentials
    from emotions_data.layout import DatasetLayout

    server = _run(lambda: _server(dataset, config, data_dir, url))
    if not _run(lambda: revoke_credentials(DatasetLayout(dataset), server, annotator)):
        raise fail(f"{annotator} has no Label Studio account")
    out.print(f"{annotator}: account deactivated, token and sessions revoked")


@workflow_app.command("migrate-server")
def migrate_server(
    dataset: DatasetArg, config: ConfigOpt = None, data_dir: DataDirOpt = None, url: UrlOpt = None
) -> None:
    """Move the dataset to the running server (another Label Studio database): votes keep the server they were cast
    on, the accounts are made there, and the next push makes the projects."""
    from annotation.server_record import migrate_server as run
    from emotions_data.layout import DatasetLayout

    # the server to move to: given explicitly, else the toolkit's own; never the one the dataset recorded
    report = _run(lambda: run(DatasetLayout(dataset), _client(None, config, data_dir, url)))
    was = f"{report.old['server_id']} ({report.old['url']})" if report.old else "none recorded"
    out.print(f"server: {was} -> {report.new['server_id']} ({report.new['url']}); {report.accounts} account(s)",
              highlight=False)  # fmt: skip
    if report.archived_projects:
        out.print(f"the old server's projects are listed in {report.archived_projects}; run push for each stage",
                  highlight=False)  # fmt: skip
