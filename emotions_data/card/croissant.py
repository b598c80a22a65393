"""The card's Croissant 1.0 JSON-LD with its Responsible-AI fields (pure): one FileObject per Parquet file, one
RecordSet per variant and split, the nested `votes` column a repeated field with sub-fields."""

from __future__ import annotations

import re
from typing import Any

from emotions_data.card.metadata import CardMetadata
from emotions_data.card.text import agreement_summary, filter_settings, key_values

CROISSANT_CONFORMS_TO = ["http://mlcommons.org/croissant/1.0", "http://mlcommons.org/croissant/RAI/1.0"]

#: The Croissant 1.0 JSON-LD context, as mlcroissant writes it (plus the RAI prefix).
CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

_CR_TYPES = {
    "string": "sc:Text",
    "large_string": "sc:Text",
    "bool": "sc:Boolean",
    "double": "sc:Float",
    "float": "sc:Float",
}


def _cr_type(arrow_type: str) -> str:
    if arrow_type in _CR_TYPES:
        return _CR_TYPES[arrow_type]
    if re.fullmatch(r"u?int\d+", arrow_type):
        return "sc:Integer"
    if arrow_type.startswith("timestamp"):
        return "sc:DateTime"
    return "sc:Text"


def _is_nested(arrow_type: str) -> bool:
    return arrow_type.startswith(("list", "large_list", "struct", "map"))


def _file_objects(meta: CardMetadata) -> list[dict[str, Any]]:
    """One FileObject per Parquet file, with its size and sha256."""
    return [
        {
            "@type": "cr:FileObject",
            "@id": path,
            "name": path,
            "description": f"{variant} variant, {split} split ({meta.variants[variant][split]} rows).",
            "contentUrl": path,
            "contentSize": f"{meta.file_bytes.get(path, 0)} B",
            "encodingFormat": "application/x-parquet",
            "sha256": meta.file_sha256.get(path, ""),
        }
        for variant, splits in meta.files.items()
        for split, path in splits.items()
    ]


_LIST_OF_STRUCTS = re.compile(r"(?:large_)?list<[^:<>]+: struct<([^<>]*)>>")


def _struct_members(arrow_type: str) -> list[tuple[str, str]] | None:
    """(name, arrow type) of each member of a list of flat structs (`list<element: struct<a: string, ...>>`, as
    pyarrow prints it), e.g. the `votes` column; None for any other type."""
    match = _LIST_OF_STRUCTS.fullmatch(arrow_type)
    if not match:
        return None
    members = [part.split(": ", 1) for part in match.group(1).split(", ")]
    return [(m[0], m[1]) for m in members] if all(len(m) == 2 for m in members) else None


def _field(rs_id: str, path: str, name: str, arrow_type: str) -> dict[str, Any]:
    """The Field of one Parquet column: a flat column as its value; a list of flat structs (`_struct_members`) as a
    repeated field whose sub-fields take each member out of the column's structs (a JSONPath on each element,
    which mlcroissant 1.1 reads into a list of {sub-field: value} per record)."""
    field: dict[str, Any] = {"@type": "cr:Field", "@id": f"{rs_id}/{name}", "name": name,
                             "description": f"Column `{name}` ({arrow_type})."}  # fmt: skip
    members = _struct_members(arrow_type)
    if members is None:
        return field | {"dataType": _cr_type(arrow_type),
                        "source": {"fileObject": {"@id": path}, "extract": {"column": name}}}  # fmt: skip
    field["repeated"] = True
    field["subField"] = [
        {"@type": "cr:Field", "@id": f"{rs_id}/{name}/{member}", "name": member,
         "description": f"`{member}` of each element of `{name}` ({member_type}).", "dataType": _cr_type(member_type),
         "source": {"fileObject": {"@id": path}, "extract": {"column": name}, "transform": {"jsonPath": member}}}
        for member, member_type in members
    ]  # fmt: skip
    return field


def _record_sets(meta: CardMetadata) -> list[dict[str, Any]]:
    """One RecordSet per variant/split whose fields are the Parquet columns (`_field`): a list of flat structs,
    i.e. `votes` (the item's counted votes as {annotator_id, stage, label}), is a repeated field with a sub-field
    per member. A column of any other nested shape is left out, and each RecordSet's description names it and how
    to read it."""
    described = [(n, t) for n, t in meta.columns if not _is_nested(t) or _struct_members(t) is not None]
    left_out = [n for n, t in meta.columns if (n, t) not in described]
    note = (
        f" The Parquet file also holds {', '.join(f'`{n}`' for n in left_out)} (nested values this metadata does "
        "not describe); read it with pyarrow, pandas or Hugging Face datasets."
        if left_out
        else ""
    )
    return [
        {
            "@type": "cr:RecordSet",
            "@id": f"{variant}/{split}",
            "name": f"{variant}/{split}",
            "description": f"One record per video of the {variant} variant, {split} split.{note}",
            "key": {"@id": f"{variant}/{split}/video_id"},
            "field": [_field(f"{variant}/{split}", path, name, arrow_type) for name, arrow_type in described],
        }
        for variant, splits in meta.files.items()
        for split, path in splits.items()
    ]


def _responsible_ai(meta: CardMetadata) -> dict[str, Any]:
    """The Croissant RAI vocabulary's fields: collection, annotation, uses, limitations, maintenance."""
    ann = meta.annotation
    groups = ann.get("groups") or {}
    return {
        "rai:dataCollection": (
            "Short videos collected by URL from short-video platforms, downloaded with yt-dlp, probed, filtered "
            f"and de-duplicated. Ingest outcome: {key_values(meta.ingest.get('status_counts') or {})}; "
            f"filter settings: {key_values(filter_settings(meta))}."
        ),
        "rai:dataCollectionType": ["Web Scraping", "Manual Human Curation"],
        "rai:dataCollectionRawData": "Public short videos from Douyin, Kuaishou and TikTok (not redistributed).",
        "rai:dataPreprocessingProtocol": [
            "Filters on duration, resolution, audio and decodability; exact (sha256) and near (perceptual "
            "fingerprint) duplicate removal; normalisation to H.264/AAC constant frame rate.",
        ],
        "rai:dataAnnotationProtocol": [
            "Groups balanced on annotator attributes label their share in Label Studio; a rotating cross-check has "
            "each group's items re-labelled by another group; consistency evaluation and personnel adjustment; "
            "multi-stage labelling; an expert resolves ties and disputed items. Final label by majority vote "
            f"(ties to the expert). Votes per stage: {key_values(ann.get('stages') or {})}; decided by: "
            f"{key_values(ann.get('decided_by') or {})}.",
        ],
        "rai:dataAnnotationPlatform": ["Label Studio (open-source edition)"],
        "rai:dataAnnotationAnalysis": agreement_summary(meta),
        "rai:annotationsPerItem": f"Votes per item -> items: {key_values(ann.get('votes_per_item') or {})}.",
        "rai:annotatorDemographics": [
            f"{ann.get('n_annotators', 'n/a')} annotators in {len(groups)} groups ({key_values(groups)}), balanced on "
            "work experience, emotional-intelligence test score, education, cultural background and leadership; only "
            "aggregate attributes are reported, annotators are identified by pseudonymous ids only."
        ],
        "rai:dataUseCases": meta.uses,
        "rai:dataLimitations": meta.limitations,
        "rai:dataBiases": meta.biases,
        "rai:personalSensitiveInformation": meta.personal_information,
        "rai:dataReleaseMaintenancePlan": meta.maintenance,
    }


def croissant_jsonld(meta: CardMetadata) -> dict[str, Any]:
    """Croissant 1.0 JSON-LD with the RAI fields: one FileObject per Parquet file and one RecordSet per
    variant/split whose fields are the Parquet columns, `votes` a repeated field with sub-fields
    (`_record_sets`). Keys without a value (no creation date, homepage or citation) are left out."""
    jsonld: dict[str, Any] = {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "name": meta.name,
        "alternateName": meta.title,
        "description": meta.description or meta.title,
        "conformsTo": CROISSANT_CONFORMS_TO,
        "version": meta.version,
        "datePublished": meta.created_at[:10] if meta.created_at else None,
        "license": meta.license_link or f"{meta.license} ({meta.license_name}): {meta.license_terms}",
        "url": meta.homepage or None,
        "citeAs": meta.citation or None,
        "keywords": meta.tags,
        "inLanguage": meta.language,
        "isAccessibleForFree": True,
        "distribution": _file_objects(meta),
        "recordSet": _record_sets(meta),
        **_responsible_ai(meta),
    }
    return {k: v for k, v in jsonld.items() if v is not None}
