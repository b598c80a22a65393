"""The AV-CANet (a.k.a. AV-CPNet) audio-visual baseline, trained and evaluated on a release.

``model`` is the network, ``weights`` loads and converts local Swin-T weights, ``audio``, ``sampling``, ``media``,
``cache`` and ``data`` turn a release's videos into model inputs, ``loss``, ``schedules``, ``metrics``,
``distributed`` and ``train`` are the training loop, and ``recipes`` runs it on a release. Needs the ``baseline``
extra (torch, torchvision).
"""
