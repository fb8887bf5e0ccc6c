"""`koala app`: a web page that colorizes dropped photos, for people who do not use terminals."""
