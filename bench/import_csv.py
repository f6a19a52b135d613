#!/usr/bin/env python3
"""Writes a catalog file of N products (and 10 categories) in the export's CSV shape, for
bench/run.sh's import figure:  import_csv.py N > catalog.csv

Every value is arithmetic on the row number: the same N always gives the same file.
"""
import csv
import sys

COLUMNS = ["kind", "slug", "parent_slug", "category_slug", "sku", "name", "description",
           "price", "stock", "images", "is_active", "sort_order"]
NOUNS = ["Пицца", "Ролл", "Бургер", "Салат", "Суп", "Десерт", "Напиток", "Паста", "Пирог", "Стейк"]


def main():
    n = int(sys.argv[1])
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(COLUMNS)
    for c in range(1, 11):
        out.writerow(["category", f"import-{c}", "", "", "", f"Импорт {c}", "", "", "", "",
                      "true", c])
    for i in range(1, n + 1):
        noun = NOUNS[i % len(NOUNS)]
        price_minor = 9900 + (i * 7919) % 190000
        out.writerow([
            "product", "", "", f"import-{i % 10 + 1}", f"IMP-{i:06d}",
            f"{noun} «Импорт» №{i}",
            f"Порция {200 + i % 50 * 10} г, партия {i // 100}. Готовим за {10 + i % 20} минут.",
            f"{price_minor // 100}.{price_minor % 100:02d}",
            "" if i % 3 else str(i % 1000),
            f"https://cdn.example.com/import/{i}.jpg https://cdn.example.com/import/{i}-2.jpg",
            "true" if i % 13 else "false",
            i % 100,
        ])


if __name__ == "__main__":
    main()
