"""The AV-CANet (a.k.a. AV-CPNet) baseline. Needs the `baseline` extra (torch, torchvision). Arrives with issue 5."""
