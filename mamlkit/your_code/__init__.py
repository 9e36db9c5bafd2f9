"""Your own MAML loop's room: ``checker`` (``check_maml``, the placement mistakes it finds), ``diagnosis``
(``placement_report``: every placement measured on your model and episodes) and ``libraries`` (learn2learn, TorchOpt
and torch.func, as the checker meets them). ``mk.check_maml`` and ``mk.placement_report`` load this room.

This room imports the core only (``docs/package.md``).
"""
