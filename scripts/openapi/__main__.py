"""`python -m scripts.openapi`: rewrites gen/openapi.json from gen/customers.pb (make gen)."""

from __future__ import annotations

from scripts.openapi import write

if __name__ == "__main__":
    write()
