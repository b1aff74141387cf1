"""A collection script: print the table's records as JSON (an array, or one object per line)."""

import json

records = [
    {"item_id": 3, "label": "pear (old list)", "price": 0.8, "added_on": "2025-12-01"},
    {"item_id": 4, "label": "plum", "price": 0.3, "added_on": "2026-03-15"},
]
print(json.dumps(records))
