"""Patients from the legacy hospital information system.

A collection script prints its records as JSON on stdout (an array or JSON Lines); here the
legacy export is simulated deterministically. Its ids overlap the registry's: the registry
has the higher priority, so for a shared patient_id the registry's record wins.
"""

import json
import os
import random
import sys

rng = random.Random(1234)
wards = ["W-CAR", "W-ORT", "W-PED", "W-ICU", "W-GER", "W-ONC", "W-NEU"]
records = []
for pid in list(range(1070, 1090)):
    records.append(
        {
            "PatientNo": pid,
            "full_name": f"Legacy Patient {pid}",
            "birth_date": f"19{rng.randint(40, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "sex": rng.choice(["F", "M"]),
            "postcode": rng.choice(["10115", "10243", "12043", "13347"]),
            "ward_id": rng.choice(wards),
            "diagnosis": rng.choice(["hypertension", "diabetes", "asthma", "fracture"]),
            "weight_kg": round(rng.gauss(72, 12), 1),
        }
    )
# one record with weight as text, as the legacy system sometimes sends it
records[3]["weight_kg"] = "81.5"
print(f"legacy export for version {os.environ.get('DM_VERSION', '?')}", file=sys.stderr)
for r in records:
    print(json.dumps(r))
