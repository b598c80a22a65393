"""The annotation workflow over Label Studio (`annotation.labelstudio`): annotator groups balanced on the roster's
attributes, the label / cross-check / relabel / expert stages, the vote table as the system of record, consistency
and agreement statistics, final labels by majority vote or Dawid-Skene, and a simulated panel for demos and tests.
Builds on the dataset core (`emotions_data`); the command line over it lives in `emotions_cli`.

State lives in the dataset folder (`emotions_data.layout.DatasetLayout` names each file), one module for each:
`manifests/annotators.parquet` (`annotators`: groups, pseudonymous ids, accounts), `manifests/assignments.parquet`
(`allocation_step`: which group labels which video), `manifests/ls_projects.json` (`projects`: the Label Studio project
of each stage and annotator, with its items, planned by `stage_plan` and made by `push`), `manifests/ls_server.json`
(`server_record`: the server those projects and votes live on), and the files a `pull` commits together:
`manifests/votes.parquet` (the system of record, read through `votes`), `manifests/vote_history.parquet` (every later
change to a vote) and `manifests/pull_report.json` (what the last pull did not count, and why). Passwords go to a
0600 file outside the dataset (`credentials`). Label Studio holds only what annotators need to work, and is
untrusted input (`vetting`)."""
