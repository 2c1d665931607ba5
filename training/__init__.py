"""RLHF Studio's training core: plain Python, torch and transformers, no Django.

Takes plain data (lists of dicts, paths, dataclass configs) and returns plain results
(metrics dicts, checkpoint paths). The web app turns database rows into these records
in `feedback/services/exports.py`.
"""
