"""Every manifest the toolkit writes, defined once as a pyarrow schema.

A manifest file carries its schema version in the Parquet key-value metadata under
``emotions.schema_version`` so readers can refuse files they do not understand.
"""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

# 1.1: the source's colour transfer and primaries in the probe facts; 1.2: the platform's metadata (PLATFORM_FIELDS);
# 1.3: the source's audio tracks and the one kept, why the media has its frame rate, yt-dlp's warnings
SCHEMA_VERSION = "1.3"
READABLE_SCHEMA_VERSIONS = ("1.0", "1.1", "1.2", "1.3")  # older manifests are read; columns they lack are null
SCHEMA_VERSION_KEY = b"emotions.schema_version"


class Status(StrEnum):
    """Outcome of one input item."""

    OK = "ok"
    REJECTED = "rejected"  # readable, but fails a filter or is a duplicate
    FAILED = "failed"  # could not be fetched or processed


class Reason(StrEnum):
    """Machine-readable code for every non-ok row; `reason_detail` holds the message."""

    DOWNLOAD_ERROR = "download_error"
    SOURCE_MISSING = "source_missing"
    CORRUPT = "corrupt"
    NO_VIDEO = "no_video"
    NO_AUDIO = "no_audio"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    LOW_RESOLUTION = "low_resolution"
    DUPLICATE = "duplicate"
    NEAR_DUPLICATE = "near_duplicate"
    NORMALISE_ERROR = "normalise_error"
    NOT_PROCESSED = "not_processed"  # an interrupted run left the item pending; the next run does it
    UNRECOGNISED_PAGE = "unrecognised_page"  # the platform's page is not of a structure the extractor knows
    NOT_ONE_VIDEO = "not_one_video"  # the URL names no single video: a profile, live room, list or image post


#: One row per input item: what the user asked for. Written by `sources`, read by `ingest`.
INPUTS_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_kind", pa.string(), nullable=False),  # "url" or "file"
        pa.field("input_index", pa.int64(), nullable=False),  # order of first registration
        pa.field("platform", pa.string()),
        pa.field("uploader", pa.string()),
    ]
)
# Any other column of the user's source table follows these, under its own name and type.

#: Facts about the original file, produced by the fetch-and-probe stage.
PROBE_FIELDS = [
    pa.field("sha256", pa.string()),
    pa.field("size_bytes", pa.int64()),
    pa.field("container", pa.string()),
    pa.field("duration_s", pa.float64()),  # the container's (or, when it states none, measured from packets)
    pa.field("video_duration_s", pa.float64()),  # the picture's: what the duration filters judge
    pa.field("audio_duration_s", pa.float64()),
    pa.field("has_video", pa.bool_()),
    pa.field("width", pa.int32()),  # as displayed: after rotation and sample aspect ratio
    pa.field("height", pa.int32()),
    pa.field("rotation", pa.int32()),
    pa.field("fps", pa.float64()),
    pa.field("vfr", pa.bool_()),
    pa.field("has_audio", pa.bool_()),
    pa.field("audio_sample_rate", pa.int32()),
    pa.field("audio_channels", pa.int32()),
    pa.field("video_codec", pa.string()),
    pa.field("color_transfer", pa.string()),  # ffprobe's name: bt709, smpte2084 (PQ), arib-std-b67 (HLG), ...
    pa.field("color_primaries", pa.string()),
    pa.field("audio_codec", pa.string()),
    pa.field("bit_rate", pa.int64()),
    pa.field("audio_tracks", pa.int32()),  # how many audio tracks the file has
    pa.field("audio_track", pa.int32()),  # the one kept (default, else first), 0-based; the audio columns describe it
]

#: Facts about the fetch itself (downloaded items only).
DOWNLOAD_FIELDS = [
    pa.field("original_path", pa.string()),  # relative to the dataset folder
    pa.field("downloader", pa.string()),
    pa.field("downloader_version", pa.string()),
    pa.field("extractor", pa.string()),
    pa.field("download_warnings", pa.list_(pa.string())),  # what yt-dlp only warned about on the last try (first 5)
]

#: What the platform says about a downloaded video (`emotions_data.platforms`); null for local files and for what a
#: platform does not give.
PLATFORM_FIELDS = [
    pa.field("platform_video_id", pa.string()),  # the platform's own id; with `platform`, one item per video
    pa.field("webpage_url", pa.string()),  # the video's canonical page
    pa.field("uploader_id", pa.string()),  # the account's stable id on the platform
    pa.field("uploader_handle", pa.string()),  # its handle or shown name (pseudonymised in releases)
    pa.field("title", pa.string()),
    pa.field("description", pa.string()),
    pa.field("tags", pa.list_(pa.string())),
    pa.field("upload_time", pa.timestamp("s", tz="UTC")),
    pa.field("platform_duration_s", pa.float64()),  # as the platform states it, not measured
    pa.field("view_count", pa.int64()),
    pa.field("like_count", pa.int64()),
    pa.field("comment_count", pa.int64()),
    pa.field("repost_count", pa.int64()),
    pa.field("info_json_path", pa.string()),  # platform_info/<video_id>.info.json, relative to the dataset folder
]

#: Facts about the normalised file, produced by the normalise stage.
MEDIA_FIELDS = [
    pa.field("media_path", pa.string()),  # relative to the dataset folder
    pa.field("media_sha256", pa.string()),
    pa.field("media_duration_s", pa.float64()),
    pa.field("media_width", pa.int32()),
    pa.field("media_height", pa.int32()),
    pa.field("media_fps", pa.float64()),
    pa.field("fingerprint", pa.string()),  # see emotions_data.fingerprint
    pa.field("media_fps_reason", pa.string()),  # why the media has that rate (emotions_data.normalise.choose_fps)
]

OUTCOME_FIELDS = [
    pa.field("status", pa.string(), nullable=False),
    pa.field("reason", pa.string()),
    pa.field("reason_detail", pa.string()),
    pa.field("retryable", pa.bool_()),  # a failure worth retrying on the next run
    pa.field("attempts", pa.int32()),
    pa.field("processed_at", pa.timestamp("s", tz="UTC")),
]

#: The resolve stage's committed rows (internal, under `.work/`): which platform video a URL names, found before
#: anything is downloaded.
RESOLVE_STAGE_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        *OUTCOME_FIELDS,
        pa.field("resolved_platform", pa.string()),  # none: no platform extractor knows the URL (a plain file URL)
        pa.field("platform_video_id", pa.string()),
        pa.field("resolved_url", pa.string()),  # the URL the fetch stage downloads (a share link's target)
        pa.field("extractor", pa.string()),
    ]
)

#: The fetch-and-probe stage's committed rows (internal, under `.work/`).
PROBE_STAGE_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        *OUTCOME_FIELDS,
        *PROBE_FIELDS,
        *DOWNLOAD_FIELDS,
        *PLATFORM_FIELDS,
    ]
)

#: The normalise stage's committed rows (internal, under `.work/`).
NORMALISE_STAGE_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("sha256", pa.string()),  # of the original the media was made from
        pa.field("recipe", pa.string()),  # hash of the normalise settings that made the media
        *OUTCOME_FIELDS,
        *MEDIA_FIELDS,
    ]
)

#: `manifests/videos.parquet`: exactly one row per input item ever registered in the dataset.
#: The user's extra source columns follow these columns (renamed `input_<name>` on a clash).
VIDEOS_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_kind", pa.string(), nullable=False),
        pa.field("input_index", pa.int64(), nullable=False),
        pa.field("platform", pa.string()),
        pa.field("uploader", pa.string()),
        *OUTCOME_FIELDS,
        pa.field("dup_of", pa.string()),
        *PROBE_FIELDS,
        *DOWNLOAD_FIELDS,
        *MEDIA_FIELDS,
        *PLATFORM_FIELDS,
    ]
).with_metadata({SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()})


def empty_row(schema: pa.Schema) -> dict[str, object]:
    """A row with every column of `schema` set to None."""
    return {name: None for name in schema.names}


class Stage(StrEnum):
    """The annotation stage a vote was cast in (the `stage` column of the vote table)."""

    LABEL = "label"  # each group labels its own share of the videos
    CROSSCHECK = "crosscheck"  # each group's share labelled again by the next group
    RELABEL = "relabel"  # items that lost votes of dropped annotators get fresh ones
    CROSSCHECK2 = "crosscheck2"  # after the personnel adjustments: a second cross-check round by the updated groups
    EXPERT = "expert"  # ties and weak agreement, decided by the expert; final


class VoteStatus(StrEnum):
    """Whether a vote on record counts (the `status` column of the vote table)."""

    KEPT = "kept"  # counts (unless its annotator was dropped)
    DELETED = "deleted"  # its annotation disappeared from Label Studio: on record, never counted
    SUPERSEDED = "superseded"  # an expert's earlier decision on an item that came back to them


#: The vote table's own version: 2.0 added the facts fixed when a vote is cast (comment, project, writer,
#: server) and its status. Version 1.0 tables (without those columns) are still read (`annotation.votes`).
VOTES_SCHEMA_VERSION = "2.0"


#: `manifests/votes.parquet`: the system of record for annotation, one row per vote (long format).
VOTES_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("annotator_id", pa.string(), nullable=False),  # pseudonymous; names stay in the roster
        pa.field("stage", pa.string(), nullable=False),  # label, crosscheck, expert, ...
        pa.field("group", pa.string()),  # of the project the vote was cast in, never rewritten by a later move
        pa.field("label", pa.string(), nullable=False),
        pa.field("unsure", pa.bool_()),
        pa.field("comment", pa.string()),
        pa.field("lead_time_s", pa.float64()),
        pa.field("created_at", pa.timestamp("s", tz="UTC")),
        pa.field("ls_task_id", pa.int64()),
        pa.field("ls_annotation_id", pa.int64()),
        # 2.0: the facts fixed when the vote is cast, and whether it counts
        pa.field("updated_at", pa.timestamp("s", tz="UTC")),  # its last accepted edit in Label Studio
        pa.field("status", pa.string()),  # VoteStatus; none in a 1.0 table means kept
        pa.field("round", pa.int32()),  # expert stage: the how-many-th time the item came to this expert
        pa.field("ls_project_id", pa.int64()),
        pa.field("ls_written_by", pa.int64()),  # the account Label Studio recorded as the writer (its updated_by)
        pa.field("server_id", pa.string()),  # the Label Studio server's stable identity (ids are server-local)
        pa.field("server_url", pa.string()),
    ]
).with_metadata({SCHEMA_VERSION_KEY: VOTES_SCHEMA_VERSION.encode()})

#: `manifests/vote_history.parquet`: every change to a vote on record after it was cast (append-only): edits by
#: its annotator (old and new label), disappearances from Label Studio, an expert's decision superseded.
VOTE_HISTORY_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("annotator_id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("event", pa.string(), nullable=False),  # edited, deleted, restored, superseded
        pa.field("old_label", pa.string()),
        pa.field("new_label", pa.string()),
        pa.field("old_unsure", pa.bool_()),
        pa.field("new_unsure", pa.bool_()),
        pa.field("old_comment", pa.string()),
        pa.field("new_comment", pa.string()),
        pa.field("by", pa.string()),  # annotator id, "admin" (the toolkit's own account), "unknown" (not recorded)
        pa.field("at", pa.timestamp("s", tz="UTC")),  # when Label Studio recorded the change (else the pull)
        pa.field("pulled_at", pa.timestamp("s", tz="UTC"), nullable=False),
        pa.field("ls_annotation_id", pa.int64()),
        pa.field("server_id", pa.string()),
    ]
).with_metadata({SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()})


class DecidedBy(StrEnum):
    MAJORITY = "majority"
    MODEL = "model"  # Dawid-Skene posterior
    EXPERT = "expert"
    OFFICIAL = "official"  # imported with a published dataset


#: `manifests/labels.parquet`: one final label per decided video.
LABELS_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("polarity", pa.string()),
        pa.field("confidence", pa.float64()),  # vote share, posterior, or 1.0 for an expert decision
        pa.field("n_votes", pa.int32()),  # non-expert votes the decision saw
        pa.field("agreement", pa.float64()),  # share of agreeing pairs among those votes (annotation.agreement)
        pa.field("decided_by", pa.string(), nullable=False),
    ]
).with_metadata({SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()})

#: `labels.parquet`'s schema metadata key naming the vote table the labels were decided from: `OWN_VOTES` for the
#: dataset's own `manifests/votes.parquet`, else the path of a table from outside (a release refuses those labels:
#: its `votes` column and its card's statistics must come from the table its labels came from).
LABELS_VOTES_KEY = b"emotions.votes_table"
OWN_VOTES = "manifests/votes.parquet"
#: `labels.parquet`'s schema metadata key holding `release.votes_digest` of the counted votes the labels were decided
#: from: a release whose votes differ (a pull, an import or a dropped annotator since) is refused.
LABELS_DIGEST_KEY = b"emotions.votes_digest"

#: `manifests/needs_expert.parquet`: items no rule could decide (ties), waiting for the expert stage.
NEEDS_EXPERT_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("votes", pa.string()),  # e.g. "Fear:2, Tension:2"
    ]
).with_metadata({SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()})

#: `manifests/annotators.parquet`: who is in which group (pseudonymous ids only; contacts stay in the roster).
ANNOTATORS_SCHEMA = pa.schema(
    [
        pa.field("annotator_id", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),  # annotator or expert
        pa.field("group", pa.string()),  # none for experts
        pa.field("active", pa.bool_(), nullable=False),  # false once dropped after a consistency evaluation
        pa.field("ls_user_id", pa.int64()),
    ]
).with_metadata({SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()})

#: `manifests/assignments.parquet`: which group labels which video.
ASSIGNMENTS_SCHEMA = pa.schema(
    [pa.field("video_id", pa.string(), nullable=False), pa.field("group", pa.string(), nullable=False)]
).with_metadata({SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()})


class Split(StrEnum):
    """A split of a variant, in the order files, tables and the split index use (`list(Split)`)."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class Variant(StrEnum):
    """A variant the split step makes, in release and card order (`list(Variant)`); an imported dataset may add
    others (e.g. `official`), which are kept as plain strings."""

    FULL = "full"  # every ok, labelled video
    BALANCED = "balanced"  # per split, every class cut down to the same count
    TEST_ORIENTED = "test_oriented"  # a larger class-balanced test set


#: `manifests/splits.parquet`: which video is in which split of which variant.
SPLITS_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),  # full, balanced, test_oriented
        pa.field("split", pa.string(), nullable=False),  # train, val, test
    ]
).with_metadata({SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()})

#: `releases/X.Y.Z/data/<variant>/<split>.parquet`: what a release publishes per video (never the media).
RELEASE_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("label_index", pa.int32(), nullable=False),  # position in the taxonomy's class order
        pa.field("polarity", pa.string()),
        pa.field("source", pa.string()),
        pa.field("platform", pa.string()),
        pa.field("platform_video_id", pa.string()),  # the platform's own id of the video
        pa.field("webpage_url", pa.string()),  # its canonical page
        pa.field("uploader", pa.string()),  # a keyed pseudonym (release.uploader_pseudonym) unless asked otherwise
        pa.field("sha256", pa.string()),  # of the original
        pa.field("media_sha256", pa.string()),  # of the normalised file, to check a local copy
        pa.field("duration_s", pa.float64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("fps", pa.float64()),
        pa.field("confidence", pa.float64()),
        pa.field("decided_by", pa.string()),
        pa.field("n_votes", pa.int32()),
        pa.field("agreement", pa.float64()),  # observed pairwise agreement of the item's counted votes
        pa.field(
            "votes",
            pa.list_(
                pa.struct(
                    [
                        pa.field("annotator_id", pa.string()),
                        pa.field("stage", pa.string()),
                        pa.field("label", pa.string()),
                    ]
                )
            ),
        ),
    ]
).with_metadata({SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()})
