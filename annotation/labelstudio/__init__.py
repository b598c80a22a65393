"""Label Studio, the annotators' tool, as the toolkit runs and uses it.

`config`: where the local server runs and its secrets; `process`: starting, stopping and checking that server;
`client`: its REST API over HTTP; `interface`: the labelling interface annotators see and the answers it gives.
"""
