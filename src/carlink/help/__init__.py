"""The help centre (HLP-1): articles in Japanese, English and German that answer every requirement topic,
searchable with the database's full-text search, each linking to the portal page that does the thing.

Articles are data (``articles/<slug>.toml``), validated at start-up (`articles`), copied into the
``help_articles`` table when they change (`service.ensure_help_articles`) and searched there (`search`).
How they are written and indexed: ``docs/help.md``.
"""
