"""The annotation workflow over Label Studio (`annotation.labelstudio`): annotator groups balanced on the roster's
attributes, the label / cross-check / relabel / expert stages, the vote table as the system of record, consistency
and agreement statistics, final labels by majority vote or Dawid-Skene, and a simulated panel for demos and tests.
Builds on the dataset core (`emotions_data`); the command line over it lives in `emotions_cli`."""
