"""The "Fake or real?" user study of seed 001 (and the Turing test of seed 002 / Zhang et al.).

A participant sees real and colorized photos one at a time in a random order and answers
"Real" or "Fake"; votes go to SQLite; `stats` turns them into fooled rates with confidence
intervals that a paper can cite. Modules: `catalog` (which photos, opaque ids), `db` (votes),
`server` (the web page and its JSON API), `stats`, `results` (text/CSV/HTML) and `chart`.
"""
