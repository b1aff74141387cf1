"""Staff survey export: prints the `responses` or `sick_leave` records as JSON Lines.

Simulates the survey tool's export deterministically (one seed per table), so every run of a
version sees the same sources. The table comes from DM_TABLE, set by the collector.
"""

import json
import os
import random

DEPARTMENTS = [
    "Cardiology", "Oncology", "Neurology", "Surgery", "Orthopedics", "Radiology",
    "Laboratory", "Finance", "HR", "IT", "Facilities",
]  # fmt: skip
POSTCODES = ["10115", "10117", "10243", "10245", "12043", "12045", "13347", "13349", "14050"]
table = os.environ.get("DM_TABLE", "responses")
rng = random.Random(2026 if table == "responses" else 7)

if table == "responses":
    for i in range(3000):
        age = rng.randint(19, 66)
        band = "low" if age < 30 else rng.choice(["low", "middle", "middle", "high"])
        print(
            json.dumps(
                {
                    "employee_id": f"E{10000 + i}",
                    "age": age,
                    "gender": rng.choice(["female", "male", "female", "male", "diverse"]),
                    "postcode": rng.choice(POSTCODES),
                    "department": rng.choice(DEPARTMENTS),
                    "salary_band": band,
                    "monthly_salary": round(
                        rng.gauss({"low": 2900, "middle": 4300, "high": 6900}[band], 400), 2
                    ),
                    "satisfaction": rng.randint(1, 5),
                    "wants_to_leave": rng.random() < 0.18,
                }
            )
        )
else:
    for i in range(1200):
        print(
            json.dumps(
                {
                    "case_id": 500000 + i,
                    "age": rng.randint(19, 66),
                    "department": rng.choice(DEPARTMENTS),
                    "days_absent": rng.randint(1, 40),
                    "diagnosis": rng.choice(
                        ["back pain", "influenza", "burnout", "injury", "migraine", "covid-19"]
                    ),
                }
            )
        )
