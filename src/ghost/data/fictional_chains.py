"""Fictional countries in facts200's relations, and multi-hop questions about them.

A country drawn here has a capital, continent, currency, landmark, river, and an author born
in its capital who wrote a book; `one_hop` asks each relation in facts200's *training*
wording and `multi_hop` chains them as facts200's training multi-hop questions do ("What is
the capital of the country where the Brelo Gate is?" -> "In which country is the Brelo
Gate?", then "What is the capital of Zorvania?"). The names come from
`ghost.data.fictional`'s training pool, so none is a held-out entity or a real word.

What uses them: the `chain-practice` recipe (rows a model can only answer through its hops by
copying the entity it was asked about) and `benchmarks/chain_copy.py`.
"""

from __future__ import annotations

import random

from ghost.data.fictional import FictionalNames

CONTINENTS = ["Europe", "Asia", "Africa", "North America", "South America", "Oceania"]


def fictional_country(names: FictionalNames, rng: random.Random) -> dict[str, str]:
    """One fictional country and what facts200's relations say about it."""
    return {
        "country": names.word("country"),
        "capital": names.word("city"),
        "currency": names.word("currency").lower(),
        "landmark": names.landmark(),
        "river": names.word("river"),
        "continent": rng.choice(CONTINENTS),
        "author": names.person(),
        "book": names.book(),
    }


def one_hop(c: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The one-hop questions (in facts200's training wording) and their answers."""
    return {
        "capital": (f"What is the capital of {c['country']}?", c["capital"]),
        "continent": (f"On which continent is {c['country']}?", c["continent"]),
        "currency": (f"What is the currency of {c['country']}?", c["currency"]),
        "country of capital": (f"{c['capital']} is the capital of which country?", c["country"]),
        "river": (f"On which river does {c['capital']} stand?", c["river"]),
        "country of landmark": (f"In which country is the {c['landmark']}?", c["country"]),
        "country of currency": (
            f"Which country uses the {c['currency']} as its currency?",
            c["country"],
        ),
        "author": (f"Who wrote {c['book']}?", c["author"]),
        "birthplace": (f"In which city was {c['author']} born?", c["capital"]),
    }


def multi_hop(c: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(question, the one-hop relations it chains), in facts200's training multi-hop wording."""
    where, whose = f"the country where the {c['landmark']} is", f"the {c['currency']}"
    return [
        (f"What is the capital of {where}?", ["country of landmark", "capital"]),
        (f"On which continent is {where}?", ["country of landmark", "continent"]),
        (f"What is the currency of {where}?", ["country of landmark", "currency"]),
        (f"On which river is the capital of {where}?", ["country of landmark", "capital", "river"]),
        (f"What is the capital of the country whose currency is {whose}?",
         ["country of currency", "capital"]),
        (f"On which river is the capital of the country whose currency is {whose}?",
         ["country of currency", "capital", "river"]),
        (f"What is the currency of the country whose capital is {c['capital']}?",
         ["country of capital", "currency"]),
        (f"On which continent is the country whose capital is {c['capital']}?",
         ["country of capital", "continent"]),
        (f"In which city was the author of {c['book']} born?", ["author", "birthplace"]),
        (f"On which river is the city where the author of {c['book']} was born?",
         ["author", "birthplace", "river"]),
    ]  # fmt: skip


def practice_chains(n: int, seed: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """`n` multi-hop questions about fictional countries drawn for `seed`, each with its hops
    (question, answer): a fresh country per question, a uniformly chosen chain."""
    rng = random.Random(seed)
    names = FictionalNames(rng, "train")
    out = []
    for _ in range(n):
        c = fictional_country(names, rng)
        hops = one_hop(c)
        question, chain = rng.choice(multi_hop(c))
        out.append((question, [hops[r] for r in chain]))
    return out
