"""The labelling queues: who labels what next, votes, consensus, gold items, undo, leases,
invitations, and the pages and API for them.

``consensus`` (pure rules, no Django) · ``selectors`` (reads; the next-item selector) ·
``services`` (writes) · ``roles`` (permissions) · ``api``/``api_urls`` (REST) ·
``views``/``urls``/``forms`` (pages) · ``tasks`` (lease expiry, run by beat).
"""
