"""Tax receipts: the French donation receipt (Cerfa n° 11580) for paid pledges.

``models`` (organisations, their campaigns, numbering counters, receipts),
``numbering`` (the unbroken per-organisation-year sequence), ``wording`` (amounts in
figures and in French words, Paris dates), ``pdf`` (the document), ``mail`` (SMTP),
``service`` (issue, copy, send, cancel), ``endpoints`` (REST) and ``cli``
(``pledgeline receipts issue``). See docs/receipts.md.
"""
