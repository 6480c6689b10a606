"""A small seeded sentence generator: our own grammar and word lists, nothing taken from a text.

The synthetic corpus needs many distinct, pronounceable English sentences with varied phones
and prosody (statements, questions, lists, clauses). Every word here was chosen for this file;
numbers are spelt out so each speech engine reads them the same way.
"""

from __future__ import annotations

import random

from vc.errors import VoicelabError

# (singular, plural)
_NOUNS = [
    ("apple", "apples"), ("basket", "baskets"), ("bicycle", "bicycles"), ("bottle", "bottles"),
    ("bridge", "bridges"), ("candle", "candles"), ("carpet", "carpets"), ("castle", "castles"),
    ("chair", "chairs"), ("cloud", "clouds"), ("coat", "coats"), ("drum", "drums"),
    ("engine", "engines"), ("feather", "feathers"), ("fence", "fences"), ("garden", "gardens"),
    ("guitar", "guitars"), ("hammer", "hammers"), ("harbour", "harbours"), ("island", "islands"),
    ("jacket", "jackets"), ("kettle", "kettles"), ("ladder", "ladders"), ("lantern", "lanterns"),
    ("letter", "letters"), ("market", "markets"), ("mirror", "mirrors"), ("mountain", "mountains"),
    ("notebook", "notebooks"), ("orange", "oranges"), ("painting", "paintings"), ("parcel", "parcels"),
    ("pencil", "pencils"), ("pillow", "pillows"), ("puppy", "puppies"), ("rabbit", "rabbits"),
    ("river", "rivers"), ("rocket", "rockets"), ("sandwich", "sandwiches"), ("shadow", "shadows"),
    ("ship", "ships"), ("spoon", "spoons"), ("statue", "statues"), ("student", "students"),
    ("teacher", "teachers"), ("ticket", "tickets"), ("tower", "towers"), ("tractor", "tractors"),
    ("umbrella", "umbrellas"), ("valley", "valleys"), ("village", "villages"), ("wagon", "wagons"),
    ("whistle", "whistles"), ("window", "windows"), ("wizard", "wizards"), ("yacht", "yachts"),
]
_NAMES = [
    "Anna", "Boris", "Clara", "Daniel", "Edith", "Felix", "Grace", "Hugo", "Irene", "Jonas",
    "Karen", "Leo", "Maya", "Nathan", "Olga", "Peter", "Quentin", "Rosa", "Samuel", "Tara",
    "Umar", "Vera", "Walter", "Yusuf", "Zoe", "Martin", "Helen", "Oscar", "Lucy", "Victor",
]
_ADJECTIVES = [
    "ancient", "bright", "broken", "careful", "cheerful", "clever", "cold", "crooked", "curious",
    "dusty", "enormous", "fancy", "fragile", "gentle", "golden", "heavy", "hollow", "honest",
    "huge", "little", "lonely", "loud", "narrow", "noisy", "polished", "quiet", "rusty", "shiny",
    "silent", "sleepy", "smooth", "strange", "sturdy", "tiny", "velvet", "wooden", "wrinkled",
]
_COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "grey", "silver", "brown", "white", "black", "pink"]
# (base, past) of verbs that take an object
_VERBS = [
    ("carry", "carried"), ("paint", "painted"), ("borrow", "borrowed"), ("clean", "cleaned"),
    ("fix", "fixed"), ("find", "found"), ("build", "built"), ("push", "pushed"), ("pull", "pulled"),
    ("watch", "watched"), ("follow", "followed"), ("open", "opened"), ("wrap", "wrapped"),
    ("drop", "dropped"), ("lift", "lifted"), ("measure", "measured"), ("deliver", "delivered"),
    ("hide", "hid"), ("sell", "sold"), ("draw", "drew"), ("catch", "caught"), ("bring", "brought"),
    ("polish", "polished"), ("count", "counted"), ("describe", "described"), ("visit", "visited"),
]
# (base, past) of verbs without an object
_INTRANSITIVE = [
    ("laugh", "laughed"), ("wait", "waited"), ("whisper", "whispered"), ("sing", "sang"),
    ("swim", "swam"), ("travel", "travelled"), ("wander", "wandered"), ("shiver", "shivered"),
    ("sleep", "slept"), ("vanish", "vanished"), ("arrive", "arrived"), ("rattle", "rattled"),
    ("glow", "glowed"), ("tremble", "trembled"), ("shout", "shouted"), ("dance", "danced"),
]
_ADVERBS = ["quickly", "slowly", "quietly", "loudly", "gladly", "rarely", "suddenly", "nearly", "truly", "barely"]
_DEGREES = ["very", "rather", "quite", "surprisingly", "almost", "far too", "not very"]
_PLACES = [
    "near the old station", "behind the bakery", "under the kitchen table", "across the frozen lake",
    "inside the museum", "along the quiet canal", "beside the football pitch", "at the top of the hill",
    "in the north wing", "past the green gate", "outside the post office", "down by the harbour wall",
    "on the second floor", "between the two oak trees", "around the busy square", "over the stone wall",
]
_TIMES = [
    "on Monday morning", "before lunch", "after the storm", "late last night", "every Sunday",
    "in the early spring", "during the long winter", "at half past seven", "next Thursday",
    "at dawn", "around midnight", "three weeks ago", "on a rainy afternoon", "just before sunset",
]
_NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "twenty", "forty", "a hundred"]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class SentenceGenerator:
    """Seeded generator of unique English sentences.

    >>> SentenceGenerator(seed=3).take(2) == SentenceGenerator(seed=3).take(2)
    True
    """

    def __init__(self, seed: int = 0):
        self._rng = random.Random(f"voicelab-sentences-{seed}")
        self._seen: set[str] = set()

    def take(self, n: int) -> list[str]:
        """The next `n` sentences, none repeating any this generator gave before."""
        if n < 0:
            raise VoicelabError(f"number of sentences must be >= 0, got {n}")
        out = []
        attempts = 0
        while len(out) < n:
            attempts += 1
            if attempts > 50 * n + 1000:  # the grammar has millions of sentences; this is a guard
                raise VoicelabError(f"could only make {len(out)} unique sentences of the {n} asked for")
            sentence = self._one()
            if sentence not in self._seen:
                self._seen.add(sentence)
                out.append(sentence)
        return out

    def _one(self) -> str:
        r = self._rng
        pick = r.choice
        noun, plural = pick(_NOUNS)
        noun2, plural2 = pick(_NOUNS)
        verb, verbed = pick(_VERBS)
        verb2, verbed2 = pick(_VERBS)
        rest, rested = pick(_INTRANSITIVE)
        rest2, rested2 = pick(_INTRANSITIVE)
        adj, adj2 = r.sample(_ADJECTIVES, 2)
        name, name2 = r.sample(_NAMES, 2)
        templates = [
            lambda: f"the {adj} {noun} {verbed} {_article(noun2)} {noun2} {pick(_PLACES)}.",
            lambda: f"{name} {verbed} {pick(_NUMBERS)} {adj} {plural2} {pick(_TIMES)}.",
            lambda: f"did {name} {verb} the {pick(_COLOURS)} {noun} {pick(_PLACES)}?",
            lambda: f"{pick(_TIMES)}, we will {verb} the {adj} {noun} and {verb2} the {plural2}.",
            lambda: f"please ask {name} to bring {pick(_NUMBERS)} {plural} {pick(_PLACES)}.",
            lambda: f"the {noun} by the {noun2} was {pick(_DEGREES)} {adj}, so {name} {rested} {pick(_TIMES)}.",
            lambda: f"why does the {adj} {noun} {rest} so {pick(_ADVERBS)} {pick(_PLACES)}?",
            lambda: f"{name} said that the {pick(_COLOURS)} {noun} {rested} before the {noun2} {rested2}.",
            lambda: f"{name} and {name2} {verbed} {pick(_NUMBERS)} {plural}, {_article(adj)} {adj} {noun2}, and {_article(adj2)} {adj2} {pick(_NOUNS)[0]}.",
            lambda: f"if the {plural} {rest} {pick(_TIMES)}, {name} will {verb2} {_article(adj2)} {adj2} {noun2}.",
            lambda: f"how many {plural} did {name} {verb} {pick(_PLACES)}?",
            lambda: f"{pick(_ADVERBS)}, the {pick(_COLOURS)} {plural2} {rested2} {pick(_PLACES)}.",
        ]
        sentence = pick(templates)()
        return sentence[0].upper() + sentence[1:]


def generate_sentences(n: int, seed: int = 0) -> list[str]:
    """`n` unique sentences; the same seed always gives the same list (and a prefix of a longer one)."""
    return SentenceGenerator(seed).take(n)
