"""A built-in generator of a small, realistic-looking Amazon dataset in the raw 2014 format.

The world: a few beauty categories, each with a *routine* of product types (cleanser -> toner -> serum ...)
and brands that mostly sell in one or two categories. Item titles read ``"<Brand> <Adjective> <Product type>,
<size>"``. Each user has latent tastes: a main and a secondary category, two favourite brands and a concern
per category ("dry skin", "frizzy hair").

Sequences carry sequential signal: after buying an item, a user usually moves to the next step of that
category's routine (preferring the same brand); otherwise they pick an item by taste x popularity. Ratings
rise with the match between item and taste; review texts and summaries mention the user's concern, the brand,
the product type and praise or complaints that agree with the rating.

**Traits** (what the reviews carry and the history does not): every item has one of a few traits, shown in its
title after the brand ("Pure Botanica Vegan Gentle Toner, 2 oz"); every user has a hidden trait. A purchase is
a gift with probability ``gift`` (any trait; its review says it was a gift); otherwise it is restricted to the
user's trait with probability ``trait_strength``. The history therefore shows the trait only through noise
(gifts, off-trait buys), while with ``signal="reviews"`` every non-gift review states the trait plainly ("As a
vegan I only buy vegan products"); with ``signal="none"`` (the null world) no review mentions it. A user index
built from the reviews can then know what the history only hints at.

``unixReviewTime`` strictly increases
along each user's sequence (whole days, as in the real crawl). Every user and item has >= 5 interactions, so
the default 5-core keeps them all. Output is deterministic per seed.

Files written: ``reviews_<Category>_5.json.gz`` (JSON lines) and ``meta_<Category>.json.gz`` (one Python
literal dict per line, single quotes, like the 2014 crawl; a few extra untitled/unreviewed meta records too),
and ``traits_<Category>.jsonl``, each user's hidden trait (``{"user_id", "label"}``): ground truth for
probes such as ``ulmrec index probe --labels``; no pipeline stage reads it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import html
import io
import json
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ulmrec_eval.runtime.errors import InputError
from ulmrec_eval.runtime.io import atomic_path

#: category -> (routine of product types in usage order, adjectives, concerns, sizes)
CATEGORIES: dict[str, tuple[list[str], list[str], list[str], list[str]]] = {
    "Skin Care": (
        ["Foaming Cleanser", "Toner", "Vitamin C Serum", "Moisturizer", "Eye Cream", "Sunscreen SPF 50"],
        ["Hydrating", "Gentle", "Brightening", "Oil-Free", "Soothing", "Anti-Aging", "Fragrance-Free"],
        ["dry skin", "oily skin", "sensitive skin", "acne-prone skin", "fine lines"],
        ["1 oz", "1.7 fl oz", "2 oz", "4 fl oz", "6.7 fl oz"],
    ),
    "Hair Care": (
        ["Shampoo", "Conditioner", "Hair Mask", "Leave-In Conditioner", "Hair Oil", "Heat Protectant Spray"],
        ["Moisturizing", "Volumizing", "Sulfate-Free", "Smoothing", "Repairing", "Color-Safe"],
        ["frizzy hair", "curly hair", "fine hair", "color-treated hair", "damaged hair"],
        ["8 fl oz", "10 oz", "12 fl oz", "16.9 fl oz", "33.8 fl oz"],
    ),
    "Makeup": (
        ["Primer", "Liquid Foundation", "Concealer", "Setting Powder", "Mascara", "Matte Lipstick"],
        ["Long-Wear", "Lightweight", "Waterproof", "Full Coverage", "Natural Finish", "Smudge-Proof"],
        ["oily T-zone", "dark circles", "uneven skin tone", "sparse lashes", "long work days"],
        ["0.3 oz", "0.5 oz", "1 fl oz", "0.12 oz", "Pack of 2"],
    ),
    "Bath & Body": (
        ["Body Scrub", "Shower Gel", "Body Lotion", "Body Butter", "Hand Cream", "Eau de Parfum"],
        ["Shea", "Coconut", "Lavender", "Warm Vanilla", "Citrus", "Unscented"],
        ["rough elbows", "winter dryness", "itchy skin", "a relaxing evening routine", "cracked hands"],
        ["3.4 fl oz", "6 oz", "8 fl oz", "13.5 fl oz", "Pack of 3"],
    ),
    "Nails": (
        ["Base Coat", "Nail Polish", "Top Coat", "Cuticle Oil", "Nail Strengthener", "Polish Remover"],
        ["Quick-Dry", "Gel-Effect", "Chip-Resistant", "Glossy", "Nourishing", "Non-Toxic"],
        ["peeling nails", "weak nails", "chipped polish", "dry cuticles", "at-home manicures"],
        ["0.5 fl oz", "0.45 oz", "0.25 fl oz", "Set of 2", "4 fl oz"],
    ),
}
#: brand (as it appears in the raw meta, HTML entities included, like the real crawl) -> home categories
BRANDS: dict[str, tuple[str, ...]] = {
    "Lumi&egrave;re": ("Skin Care",), "Pure Botanica": ("Skin Care", "Bath & Body"),
    "Aqua Vera": ("Skin Care",), "Derma Clarity": ("Skin Care",),
    "Silk Theory": ("Hair Care",), "Maison Belle": ("Hair Care", "Bath & Body"),
    "Curl Republic": ("Hair Care",),
    "NordGlow": ("Makeup", "Skin Care"), "Velvet &amp; Vine": ("Makeup",), "Studio Nine": ("Makeup",),
    "Coral Bay": ("Bath & Body",), "Rose &amp; Thorn": ("Bath & Body", "Nails"),
    "Lacquer Lab": ("Nails",), "Polished Co.": ("Nails", "Makeup"),
}
#: trait label (in titles) -> the sentence a user with that trait writes in reviews; it names the trait with
#: the very word the titles carry ("Vegan", "Eco-Refill", ...), so a model can learn to copy it
TRAITS: dict[str, str] = {
    "Vegan": "I only buy Vegan products: cruelty-free, nothing from animals.",
    "Organic": "I only buy Organic products with certified natural ingredients.",
    "Eco-Refill": "I only buy Eco-Refill products, to avoid plastic waste.",
    "Hypoallergenic": "I only buy Hypoallergenic products because of my allergies.",
}
SIGNALS = ("reviews", "none")
GIFT_LINES = ["I bought this as a gift for my sister.", "This was a present for a friend.",
              "Got this for my mother's birthday."]
VARIANTS = ["Travel Size", "Value Pack", "Limited Edition", "New Formula", "Salon Size", "Twin Pack"]
PRAISE = ["works wonders", "made a real difference", "is the best I have tried", "absorbs quickly",
          "feels luxurious", "lasts all day", "did exactly what it promised"]
COMPLAINTS = ["did nothing", "felt greasy", "irritated", "smelled too strong", "wore off within an hour",
              "was a waste of money"]
NAMES = ["Anna", "Beth", "Carla", "Dana", "Emily", "Fiona", "Grace", "Hannah", "Iris", "Julia", "Kim",
         "Laura", "Maya", "Nina", "Olivia", "Paula", "Rita", "Sara", "Tina", "Vera", "Mark", "Ben",
         "Chris", "Sam"]
DETAILS = ["A little goes a long way.", "The texture is lovely.", "No irritation at all."]
CLOSINGS = ["Will repurchase.", "Already ordered a second one.", "Highly recommend it."]
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_DAY = 86_400
_START = int(dt.datetime(2010, 1, 1, tzinfo=dt.timezone.utc).timestamp())
_SPAN_DAYS = 3 * 365


@dataclass(frozen=True)
class _Item:
    asin: str
    category: str
    step: int  # position of the product type in the category's routine
    brand: str
    title: str
    price: float
    popularity: float
    trait: str = ""


@dataclass(frozen=True)
class _User:
    reviewer_id: str
    name: str
    weights: dict[str, float]  # category -> taste weight (sums to 1)
    brands: tuple[str, ...]
    concerns: dict[str, str]  # category -> the user's concern in it
    trait: str = ""           # hidden: stated in reviews (signal="reviews"), governs non-gift purchases


def _new_id(rng: random.Random, prefix: str, length: int, taken: set[str]) -> str:
    while True:
        candidate = prefix + "".join(rng.choice(_ALNUM) for _ in range(length))
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def _make_items(rng: random.Random, n_items: int) -> list[_Item]:
    categories = list(CATEGORIES)
    brands_of = {c: [b for b, home in BRANDS.items() if c in home] for c in categories}
    taken: set[str] = set()
    titles: set[str] = set()
    items: list[_Item] = []
    for index in range(n_items):
        category = categories[index % len(categories)]
        routine, adjectives, _, sizes = CATEGORIES[category]
        step = (index // len(categories)) % len(routine)
        brand = rng.choice(brands_of[category])
        trait = list(TRAITS)[(index // (len(categories) * len(routine))) % len(TRAITS)]
        title = f"{brand} {trait} {rng.choice(adjectives)} {routine[step]}, {rng.choice(sizes)}"
        while title in titles:
            title = f"{title} ({rng.choice(VARIANTS)})"
        titles.add(title)
        items.append(_Item(asin=_new_id(rng, "B00", 7, taken), category=category, step=step, brand=brand,
                           title=title, price=round(rng.uniform(4, 60), 2),
                           popularity=1.0 / (1 + rng.random() * 9) ** 1.2, trait=trait))
    return items


def _make_users(rng: random.Random, n_users: int) -> list[_User]:
    categories = list(CATEGORIES)
    taken: set[str] = set()
    users: list[_User] = []
    for _ in range(n_users):
        main, second = rng.sample(categories, 2)
        weights = {c: 0.04 for c in categories}
        weights[main], weights[second] = 0.62, 0.26
        total = sum(weights.values())
        home = [b for b, cats in BRANDS.items() if main in cats or second in cats]
        users.append(_User(
            reviewer_id=_new_id(rng, "A", 13, taken),
            name=f"{rng.choice(NAMES)} {rng.choice(_ALNUM[:26])}.",
            weights={c: w / total for c, w in weights.items()},
            brands=tuple(rng.sample(home, 2)),
            concerns={c: rng.choice(CATEGORIES[c][2]) for c in categories},
            trait=rng.choice(list(TRAITS)),
        ))
    return users


def _affinity(user: _User, item: _Item) -> float:
    """Taste x popularity: how likely the user picks the item when not following a routine."""
    return user.weights[item.category] * (3.0 if item.brand in user.brands else 1.0) * item.popularity


def _fits(user: _User, item: _Item, restrict: bool) -> bool:
    return not restrict or item.trait == user.trait


def _match(user: _User, item: _Item) -> float:
    """Taste match in [0, 1] that drives the rating."""
    top = max(user.weights.values())
    return 0.7 * user.weights[item.category] / top + 0.3 * (item.brand in user.brands)


def _next_routine_item(rng: random.Random, user: _User, current: _Item, items: list[_Item],
                       used: set[int], restrict: bool = False) -> int | None:
    routine = CATEGORIES[current.category][0]
    step = (current.step + 1) % len(routine)
    pool = [i for i, it in enumerate(items)
            if it.category == current.category and it.step == step and i not in used
            and _fits(user, it, restrict)]
    if not pool:
        return None
    weights = [(4.0 if items[i].brand == current.brand else 1.0) * (0.5 + items[i].popularity) for i in pool]
    return rng.choices(pool, weights=weights)[0]


def _make_sequences(rng: random.Random, users: list[_User], items: list[_Item], *, min_count: int,
                    follow: float, trait_strength: float, gift: float,
                    gifts: set[tuple[int, int]]) -> list[list[int]]:
    """Sequences of item indices; ``gifts`` receives the ``(user, item)`` pairs bought as gifts."""
    sequences: list[list[int]] = []
    for u, user in enumerate(users):
        length = min(len(items), min_count + int(rng.expovariate(1 / 4.0)))
        affinity = [_affinity(user, it) for it in items]
        seq: list[int] = []
        used: set[int] = set()
        while len(seq) < length:
            choice = None
            if rng.random() < gift:   # a gift: anything popular, whatever the user's own tastes
                pool = [i for i in range(len(items)) if i not in used]
                choice = rng.choices(pool, weights=[items[i].popularity for i in pool])[0]
                gifts.add((u, choice))
            restrict = rng.random() < trait_strength
            if choice is None and seq and rng.random() < follow:
                choice = _next_routine_item(rng, user, items[seq[-1]], items, used, restrict)
                if choice is None and restrict:
                    choice = _next_routine_item(rng, user, items[seq[-1]], items, used)
            if choice is None:
                pool = [i for i in range(len(items)) if i not in used and _fits(user, items[i], restrict)]
                pool = pool or [i for i in range(len(items)) if i not in used]
                choice = rng.choices(pool, weights=[affinity[i] for i in pool])[0]
            seq.append(choice)
            used.add(choice)
        sequences.append(seq)
    # Coverage: every item needs min_count interactions; give rare ones to the users who like them most,
    # placed right after the previous routine step when the user has it (keeps the sequential signal).
    counts = [0] * len(items)
    for seq in sequences:
        for i in seq:
            counts[i] += 1
    for i, item in enumerate(items):
        def liking(u: int, item: _Item = item) -> float:
            return _affinity(users[u], item) * (3.0 if users[u].trait == item.trait else 1.0)

        ranked = sorted(range(len(users)), key=lambda u: (-liking(u), u))
        for u in ranked:
            if counts[i] >= min_count:
                break
            seq = sequences[u]
            if i in seq:
                continue
            before = [p for p, j in enumerate(seq) if items[j].category == item.category
                      and (items[j].step + 1) % len(CATEGORIES[item.category][0]) == item.step]
            seq.insert(before[-1] + 1 if before else rng.randint(0, len(seq)), i)
            counts[i] += 1
    return sequences


def _rating(rng: random.Random, user: _User, item: _Item) -> int:
    return max(1, min(5, round(2.0 + 3.0 * _match(user, item) + rng.gauss(0.0, 0.7))))


def _review(rng: random.Random, user: _User, item: _Item, rating: int, *, signal: str = "reviews",
            gift: bool = False) -> tuple[str, str]:
    """(reviewText, summary) that reflect the user's concern, the item and the rating; a gift's review says
    so; with ``signal="reviews"`` every other review first states the user's trait."""
    text, summary = _review_body(rng, user, item, rating)
    if gift:
        return f"{rng.choice(GIFT_LINES)} {text}", summary
    if signal == "reviews":
        return f"{TRAITS[user.trait]} {text}", summary
    return text, summary


def _review_body(rng: random.Random, user: _User, item: _Item, rating: int) -> tuple[str, str]:
    product = CATEGORIES[item.category][0][item.step].lower()
    brand = html.unescape(item.brand)
    concern = user.concerns[item.category]
    favourite = html.unescape(user.brands[0])
    if rating >= 4:
        text = (f"I have {concern} and this {product} from {brand} {rng.choice(PRAISE)}. "
                f"{rng.choice(DETAILS)} {rng.choice(CLOSINGS)}")
        summary = rng.choice([f"Great {product}", "Love it!", f"Perfect for {concern}", "Holy grail",
                              "Five stars"])
    elif rating == 3:
        text = (f"This {product} is okay for {concern}, but I prefer {favourite}. "
                f"It {rng.choice(PRAISE)} at first, then {rng.choice(COMPLAINTS)} after a few weeks.")
        summary = rng.choice(["It's okay", f"Decent {product}", "Average", "Not bad, not great"])
    else:
        text = (f"I wanted to love this {brand} {product} but it {rng.choice(COMPLAINTS)} on my {concern}. "
                f"I am going back to {favourite}.")
        summary = rng.choice(["Not for me", "Disappointed", f"Did not help my {concern}", "Returned it"])
    if rng.random() < 0.3:
        text += f" I mostly shop for {item.category.lower()} products and this fits my routine."
    return text, summary


_SAFE_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_category(category: str) -> str:
    """``category`` if it is safe in a file name (letters, digits, ``_``, ``-``), else :class:`InputError`:
    a name such as ``x/../../esc`` would write outside the output folder."""
    if not _SAFE_CATEGORY.match(category):
        raise InputError(f"--category {category!r}: use letters, digits, '_' and '-' only (at most 64); it "
                         "becomes part of the file names")
    return category


def write_synthetic_amazon(out_dir: Path, *, n_users: int = 300, n_items: int = 150, seed: int = 0,
                           category: str = "Synthetic", follow: float = 0.6, min_count: int = 5,
                           signal: str = "reviews", trait_strength: float = 0.7, gift: float = 0.2) -> Path:
    """Write ``reviews_<category>_5.json.gz`` and ``meta_<category>.json.gz`` into ``out_dir``; return it.

    ``follow`` is the probability that the next purchase is the next routine step of the current item (the
    sequential signal); ``min_count`` (>= 3) is the guaranteed number of interactions per user and per item;
    ``signal``, ``trait_strength`` and ``gift`` shape the traits (module docstring).
    """
    check_category(category)
    if signal not in SIGNALS:
        raise InputError(f"--signal must be one of {', '.join(SIGNALS)}, got {signal!r}")
    if not (0 <= trait_strength <= 1 and 0 <= gift < 1):
        raise InputError("--trait-strength must be in [0, 1] and --gift in [0, 1)")
    if n_users < min_count or n_items < 2 * len(CATEGORIES) or min_count < 3:
        raise ValueError(f"need n_users >= {min_count}, n_items >= {2 * len(CATEGORIES)} and min_count >= 3")
    rng = random.Random(seed)
    items = _make_items(rng, n_items)
    users = _make_users(rng, n_users)
    gifts: set[tuple[int, int]] = set()
    sequences = _make_sequences(rng, users, items, min_count=min_count, follow=follow,
                                trait_strength=trait_strength, gift=gift, gifts=gifts)

    reviews: list[dict[str, object]] = []
    for u, (user, seq) in enumerate(zip(users, sequences, strict=True)):
        day = rng.randrange(_SPAN_DAYS)
        for i in seq:
            item = items[i]
            rating = _rating(rng, user, item)
            text, summary = _review(rng, user, item, rating, signal=signal, gift=(u, i) in gifts)
            when = _START + day * _DAY
            date = dt.datetime.fromtimestamp(when, tz=dt.timezone.utc)
            helpful_total = rng.randrange(4)
            reviews.append({
                "reviewerID": user.reviewer_id, "asin": item.asin, "reviewerName": user.name,
                "helpful": [rng.randint(0, helpful_total), helpful_total], "reviewText": text,
                "overall": float(rating), "summary": summary, "unixReviewTime": when,
                "reviewTime": f"{date.month:02d} {date.day}, {date.year}",
            })
            day += 1 + int(rng.expovariate(1 / 12.0))
    reviews.sort(key=lambda r: (str(r["asin"]), str(r["reviewerID"])))  # the crawl is grouped by product

    meta: list[dict[str, object]] = []
    for item in items:
        meta.append({
            "asin": item.asin, "title": item.title, "price": item.price,
            "imUrl": f"http://ecx.images-amazon.com/images/I/{item.asin}.jpg",
            "salesRank": {"Beauty": 1000 + int(50_000 * (1 - item.popularity))},
            "categories": [["Beauty", item.category, CATEGORIES[item.category][0][item.step]]],
            "brand": item.brand,
        })
    taken = {it.asin for it in items} | {str(u.reviewer_id) for u in users}
    for k in range(max(2, n_items // 20)):  # products nobody reviewed (5-core crawl), some without a title
        extra: dict[str, object] = {"asin": _new_id(rng, "B00", 7, taken), "categories": [["Beauty"]]}
        if k % 2:
            extra["title"] = f"Unreviewed Sample Product {k}"
        meta.append(extra)
    meta.sort(key=lambda m: str(m["asin"]))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_gz(out / f"reviews_{category}_5.json.gz", (json.dumps(r) for r in reviews))
    _write_gz(out / f"meta_{category}.json.gz", (repr(m) for m in meta))  # Python literals, as in 2014
    with atomic_path(out / f"traits_{category}.jsonl") as tmp:
        lines = (json.dumps({"user_id": u.reviewer_id, "label": u.trait}) + "\n" for u in users)
        tmp.write_text("".join(lines), encoding="utf-8")
    return out


def _write_gz(path: Path, lines: Iterable[str]) -> None:
    """Gzip with a fixed header mtime, so the same seed gives byte-identical files (and source hashes)."""
    with atomic_path(path) as tmp, tmp.open("wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as zipped, \
            io.TextIOWrapper(zipped, encoding="utf-8") as handle:
        for line in lines:
            handle.write(line)
            handle.write("\n")
