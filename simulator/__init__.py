"""`subledger simulate`: realistic store traffic, signed with development keys.

`plan.py` decides what happens (deterministic under a seed), `render.py` says it as each
store would, `run.py` signs and sends it, `keys.py` holds what it signs with.
"""
