"""Synthetic data shipped as code, for the examples and the tests: no
download, the same arrays on every machine for a given seed.

- ``trigram_data``: 4-grams (three context words -> the next word) from
  sentences of a small fixed English-like grammar over exactly 250 words
  (``WORDS``), the shape of the word-model course's data set.
  ``write_trigram_h5`` stores them in the course's ``.h5`` layout (1-based
  ``trainx, traind, valx, vald, testx, testd, words``; needs h5py).
- ``cat_car_images``: 32x32 grayscale "cat" and "car" drawings with noise,
  for the tanh MLP; ``write_cat_car_h5`` stores them in the course's ``.h5``
  layout (``trainims, trainlbls, testims, testlbls``; needs h5py).

The grammar has agreement (a dog runs / dogs run, a/an, this/these), verb
tenses (runs, ran, will run, can run, does not run), semantic classes that
verbs select (people drive vehicles, animals chase animals, everyone eats
food and drinks drinks), prepositional phrases, copulas with adjectives and
questions, so the next word depends on the context in ways an embedding
model can learn and a unigram model cannot.
"""
import random

import numpy as np

# --- the grammar's words ----------------------------------------------------
# Count nouns as (singular, plural) per semantic class.
_NOUNS = {
    "person": [("man", "men"), ("woman", "women"), ("boy", "boys"), ("girl", "girls"),
               ("child", "children"), ("teacher", "teachers"), ("doctor", "doctors"),
               ("farmer", "farmers"), ("student", "students"), ("friend", "friends")],
    "animal": [("dog", "dogs"), ("cat", "cats"), ("horse", "horses"), ("bird", "birds"),
               ("cow", "cows"), ("mouse", "mice"), ("rabbit", "rabbits"), ("pig", "pigs")],
    "food": [("apple", "apples"), ("cake", "cakes"), ("egg", "eggs"), ("orange", "oranges"),
             ("banana", "bananas"), ("sandwich", "sandwiches")],
    "vehicle": [("car", "cars"), ("bus", "buses"), ("truck", "trucks"), ("bike", "bikes"),
                ("train", "trains"), ("boat", "boats")],
    "place": [("house", "houses"), ("school", "schools"), ("park", "parks"),
              ("city", "cities"), ("garden", "gardens"), ("shop", "shops"), ("farm", "farms"),
              ("river", "rivers"), ("field", "fields")],
    "text": [("book", "books"), ("letter", "letters"), ("newspaper", "newspapers"),
             ("story", "stories")],
    "object": [("ball", "balls"), ("box", "boxes"), ("chair", "chairs"), ("table", "tables"),
               ("door", "doors"), ("window", "windows"), ("bag", "bags")],
}
# Mass nouns: no a/an, no plural.
_MASS = {"food": ["bread", "rice", "soup", "cheese", "meat"],
         "drink": ["milk", "water", "coffee", "tea", "juice"]}
_NAMES = ["john", "mary", "alice", "bob", "emma", "tom"]
_ADJECTIVES = ["big", "small", "old", "young", "new", "red", "blue", "green", "happy", "sad",
               "hungry", "tired", "little", "good", "bad", "beautiful"]
_NUMBERS = ["two", "three", "four", "five"]
_ANIMATE = ("person", "animal")
_THINGS = ("food", "vehicle", "text", "object")
# Transitive verbs: (3rd person singular, base, past), subject classes, object classes.
_TRANSITIVE = [
    (("eats", "eat", "ate"), _ANIMATE, ("food",)),
    (("drinks", "drink", "drank"), _ANIMATE, ("drink",)),
    (("sees", "see", "saw"), _ANIMATE, _ANIMATE + _THINGS + ("place",)),
    (("likes", "like", "liked"), ("person",), _ANIMATE + _THINGS),
    (("wants", "want", "wanted"), _ANIMATE, ("food", "drink", "object", "vehicle")),
    (("drives", "drive", "drove"), ("person",), ("vehicle",)),
    (("reads", "read", "read"), ("person",), ("text",)),
    (("writes", "write", "wrote"), ("person",), ("text",)),
    (("finds", "find", "found"), _ANIMATE, ("object", "food", "text")),
    (("chases", "chase", "chased"), ("animal",), ("animal", "vehicle", "object")),
    (("buys", "buy", "bought"), ("person",), ("food", "drink", "object", "vehicle", "text")),
    (("visits", "visit", "visited"), ("person",), ("place", "person")),
    (("loves", "love", "loved"), _ANIMATE, _ANIMATE + ("food",)),
]
# Intransitive verbs: forms, subject classes, and what may follow them.
_INTRANSITIVE = [
    (("sleeps", "sleep", "slept"), _ANIMATE, "adverb_or_place"),
    (("runs", "run", "ran"), _ANIMATE, "adverb_or_place"),
    (("walks", "walk", "walked"), _ANIMATE, "adverb_or_place"),
    (("plays", "play", "played"), _ANIMATE, "adverb_or_place"),
    (("swims", "swim", "swam"), _ANIMATE, "river"),
    (("lives", "live", "lived"), _ANIMATE, "place"),
    (("goes", "go", "went"), _ANIMATE, "to_place"),
]
_PLACE_PREPS = ["in", "on", "near", "behind", "at"]
_ADVERBS = ["today", "yesterday", "quickly", "slowly", "often", "again", "now"]
_SUBJECT_PRONOUNS = {"sg": ["he", "she", "it"], "pl": ["they", "we", "you"]}
_OBJECT_PRONOUNS = ["him", "her", "them", "us", "me"]
_FUNCTION = [".", "?", "and", "the", "a", "an", "this", "that", "these", "those", "my", "your",
             "his", "our", "their", "some", "every", "no", "to", "with", "not", "very",
             "is", "are", "was", "were", "will", "can", "does", "do", "did", "where"]


def _vocabulary():
    words = list(_FUNCTION)
    for pairs in _NOUNS.values():
        for sg, pl in pairs:
            words += [sg, pl]
    for mass in _MASS.values():
        words += mass
    words += _NAMES + _ADJECTIVES + _NUMBERS + _PLACE_PREPS + _ADVERBS
    words += _SUBJECT_PRONOUNS["sg"] + _SUBJECT_PRONOUNS["pl"] + _OBJECT_PRONOUNS
    for forms, _, _ in _TRANSITIVE + _INTRANSITIVE:
        words += forms
    seen, out = set(), []
    for w in words:   # "her", "read" and "that" occur in two roles
        if w not in seen:
            seen.add(w)
            out.append(w)
    return tuple(out)


WORDS = _vocabulary()
"""The 250 words of the grammar; a word's index in this tuple is its id."""
WORD_INDEX = {w: i for i, w in enumerate(WORDS)}
assert len(WORDS) == 250, len(WORDS)


# --- sentences ----------------------------------------------------------------

class _Grammar:
    def __init__(self, rng):
        self.r = rng

    def pick(self, seq):
        return seq[int(self.r.random() * len(seq))]

    def chance(self, p):
        return self.r.random() < p

    def adjectives(self):
        out = []
        while len(out) < 2 and self.chance(0.3):
            if self.chance(0.15):
                out.append("very")
            out.append(self.pick(_ADJECTIVES))
        return out

    def noun_phrase(self, cls, number=None, role="subject"):
        """Words of a noun phrase of semantic class ``cls``; returns (words, number)."""
        if cls in _MASS and cls not in _NOUNS or (cls in _MASS and self.chance(0.4)):
            det = self.pick(["the", "some", "my", "your", "his", "our", "their", "no", "this",
                             "that"])
            return [det] + self.adjectives() + [self.pick(_MASS[cls])], "sg"
        if cls == "person" and self.chance(0.25):
            if number != "pl":
                return [self.pick(_NAMES)], "sg"
        if cls in _ANIMATE and self.chance(0.15):
            if role == "subject":
                number = number or self.pick(["sg", "pl"])
                return [self.pick(_SUBJECT_PRONOUNS[number])], number
            return [self.pick(_OBJECT_PRONOUNS)], "pl"
        number = number or ("sg" if self.chance(0.6) else "pl")
        sg, pl = self.pick(_NOUNS[cls])
        adjs = self.adjectives()
        first = (adjs + [sg])[0]
        if number == "sg":
            det = self.pick(["the", "the", "a", "this", "that", "my", "your", "his", "our",
                             "their", "every", "no"])
            if det == "a" and first[0] in "aeiou":
                det = "an"
            return [det] + adjs + [sg], "sg"
        det = self.pick(["the", "the", "these", "those", "some", "my", "your", "our", "their",
                         "no", self.pick(_NUMBERS)])
        return [det] + adjs + [pl], "pl"

    def place_phrase(self):
        return [self.pick(_PLACE_PREPS)] + self.noun_phrase("place", role="object")[0]

    def verb(self, forms, number, tense):
        third, base, past = forms
        if tense == "present":
            return [third if number == "sg" else base]
        if tense == "past":
            return [past]
        if tense == "future":
            return ["will", base]
        if tense == "can":
            return ["can", base]
        return ["does" if number == "sg" else "do", "not", base]

    def statement(self):
        subj_cls = "person" if self.chance(0.6) else "animal"
        if self.chance(0.1):   # two coordinated subjects: plural agreement
            a, _ = self.noun_phrase(subj_cls, "sg")
            b, _ = self.noun_phrase(subj_cls, "sg")
            subj, number = a + ["and"] + b, "pl"
        else:
            subj, number = self.noun_phrase(subj_cls)
        tense = self.pick(["present", "present", "past", "past", "future", "can", "not"])
        kind = self.r.random()
        if kind < 0.55:
            choices = [v for v in _TRANSITIVE if subj_cls in v[1]]
            forms, _, objs = self.pick(choices)
            obj, _ = self.noun_phrase(self.pick(objs), role="object")
            words = subj + self.verb(forms, number, tense) + obj
            if self.chance(0.25):
                words += self.place_phrase() if self.chance(0.6) else [self.pick(_ADVERBS)]
            elif self.chance(0.1):
                words += ["with"] + self.noun_phrase(self.pick(_ANIMATE), role="object")[0]
        elif kind < 0.85:
            choices = [v for v in _INTRANSITIVE if subj_cls in v[1]]
            forms, _, after = self.pick(choices)
            words = subj + self.verb(forms, number, tense)
            if after == "to_place":
                words += ["to"] + self.noun_phrase("place", role="object")[0]
            elif after == "place" or (after == "adverb_or_place" and self.chance(0.5)):
                words += self.place_phrase()
            elif after == "river":
                words += [self.pick(["in", "near"]), self.pick(["the", "a", "that"]), "river"]
            elif self.chance(0.7):
                words += [self.pick(_ADVERBS)]
        else:
            be = {("sg", True): "is", ("pl", True): "are", ("sg", False): "was",
                  ("pl", False): "were"}[(number, self.chance(0.6))]
            if self.chance(0.7):
                words = subj + [be] + (["very"] if self.chance(0.2) else []) + \
                    [self.pick(_ADJECTIVES)]
            else:
                words = subj + [be] + self.place_phrase()
        return words + ["."]

    def question(self):
        subj_cls = "person" if self.chance(0.6) else "animal"
        if self.chance(0.5):
            subj, number = self.noun_phrase(subj_cls)
            be = "is" if number == "sg" else "are"
            return ["where", be] + subj + ["?"]
        subj, number = self.noun_phrase(subj_cls)
        aux = self.pick(["did", "does" if number == "sg" else "do"])
        forms, _, objs = self.pick([v for v in _TRANSITIVE if subj_cls in v[1]])
        obj, _ = self.noun_phrase(self.pick(objs), role="object")
        return [aux] + subj + [forms[1]] + obj + ["?"]

    def sentence(self):
        return self.question() if self.chance(0.12) else self.statement()


def sentences(n, seed=0):
    """``n`` sentences of the grammar, each a list of words ending in '.' or '?'.
    The same for a given seed on every machine (Python's ``random.Random``)."""
    g = _Grammar(random.Random(seed))
    return [g.sentence() for _ in range(n)]


def _fourgrams(sents, n, context):
    rows = []
    for s in sents:
        ids = [WORD_INDEX[w] for w in s]
        for i in range(len(ids) - context):
            rows.append(ids[i:i + context + 1])
            if len(rows) == n:
                return np.array(rows, dtype=np.int64)
    raise RuntimeError("not enough sentences")  # pragma: no cover - callers give enough


def trigram_data(num_train=100_000, num_val=10_000, num_test=10_000, context=3, seed=0):
    """Next-word data from the grammar: each example is ``context`` words of
    a sentence and the word after them (windows never cross a sentence end).
    Train, validation and test windows come from separate sentences.

    Returns a dict, indices 0-based into ``words``:
    - X_train (num_train, context) int64, y_train (num_train,) int64
    - X_val, y_val; X_test, y_test likewise
    - words: (250,) array of str, WORDS
    """
    out = {}
    for i, (split, n) in enumerate((("train", num_train), ("val", num_val),
                                    ("test", num_test))):
        # a sentence gives about 4 windows of 4 words; ask for plenty
        rows = _fourgrams(sentences(n // 2 + 100, seed=seed * 1000 + i), n, context)
        out[f"X_{split}"], out[f"y_{split}"] = rows[:, :context].copy(), rows[:, context].copy()
    out["words"] = np.array(WORDS)
    return out


def write_trigram_h5(path, num_train=100_000, num_val=10_000, num_test=10_000, seed=0):
    """Write ``trigram_data`` in the word-model course's .h5 layout: trainx
    (N, 3) and traind (N,) (likewise valx, vald, testx, testd) as 1-based
    int32 word indices, and words (250,) as bytes strings, as the course's
    file stores them (``nnc.datasets.load_h5`` returns them 0-based). Needs h5py."""
    try:
        import h5py
    except ImportError:
        raise ImportError("write_trigram_h5 needs h5py: pip install h5py") from None
    d = trigram_data(num_train, num_val, num_test, seed=seed)
    with h5py.File(path, "w") as f:
        for split, name in (("train", "train"), ("val", "val"), ("test", "test")):
            f[name + "x"] = (d[f"X_{split}"] + 1).astype(np.int32)
            f[name + "d"] = (d[f"y_{split}"] + 1).astype(np.int32)
        f["words"] = np.array([w.encode() for w in WORDS])
    return path


def unigram_accuracy(y_train, y_eval):
    """Accuracy on ``y_eval`` of always predicting the most frequent word of
    ``y_train``: the baseline a next-word model must beat."""
    top = np.bincount(y_train).argmax()
    return float(np.mean(y_eval == top))


# --- cat and car images ---------------------------------------------------------

def _cat(rng, yy, xx):
    cy, cx = rng.uniform(12, 22), rng.uniform(8, 24)
    r = rng.uniform(4.5, 9)
    img = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(float)
    for side in (-1, 1):   # two triangular ears on top of the head
        ex, top = cx + side * r * rng.uniform(0.45, 0.7), cy - r * rng.uniform(1.4, 1.9)
        width = (yy - top) / (cy - top) * r * 0.45
        img[(yy >= top) & (yy <= cy - r * 0.5) & (np.abs(xx - ex) <= width)] = 1.0
    for side in (-1, 1):   # dark eyes
        img[(yy - cy + r * 0.2) ** 2 + (xx - cx - side * r * 0.4) ** 2 < 1.5] = 0.2
    return img


def _car(rng, yy, xx):
    cy, cx = rng.uniform(12, 23), rng.uniform(10, 22)
    w, h = rng.uniform(6, 13), rng.uniform(2, 4)
    img = ((np.abs(yy - cy) <= h) & (np.abs(xx - cx) <= w)).astype(float)
    cw = w * rng.uniform(0.4, 0.65)   # the cabin, on top
    off = rng.uniform(-0.3, 0.3) * w
    img[(yy >= cy - h - rng.uniform(2.5, 5)) & (yy < cy - h) & (np.abs(xx - cx - off) <= cw)] = 0.8
    for side in (-1, 1):   # two wheels under the body
        img[(yy - cy - h) ** 2 + (xx - cx - side * w * 0.6) ** 2 < rng.uniform(3, 7)] = 1.0
    return img


def _clutter(rng, yy, xx):
    """Up to three random boxes and discs, in both classes."""
    img = np.zeros_like(yy)
    for _ in range(rng.integers(0, 4)):
        y0, x0, s = rng.uniform(0, 32), rng.uniform(0, 32), rng.uniform(1.5, 4)
        if rng.random() < 0.5:
            img[(np.abs(yy - y0) <= s) & (np.abs(xx - x0) <= s * rng.uniform(0.5, 2))] = 1.0
        else:
            img[(yy - y0) ** 2 + (xx - x0) ** 2 < s * s] = 1.0
    return img


def cat_car_images(n, seed=0, size=32):
    """``n`` grayscale images, half "cats" (a round head with two pointed ears)
    and half "cars" (a long body, a cabin and two wheels), at random positions
    and sizes, with random contrast, a brightness gradient, clutter (random
    boxes and discs in both classes) and noise: a small MLP fits the training
    set but stays near twenty percent test error, as on real photographs.

    Returns (ims, lbls): ims (n, size, size) uint8, lbls (n,) int64 with
    1 = cat, 0 = car, in random order.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    lbls = rng.permutation(np.arange(n) % 2)
    ims = np.empty((n, size, size), dtype=np.uint8)
    for i, cat in enumerate(lbls):
        shape = _cat(rng, yy, xx) if cat else _car(rng, yy, xx)
        angle = rng.uniform(0, 2 * np.pi)
        background = 0.5 + 0.2 * ((np.cos(angle) * xx + np.sin(angle) * yy) / size - 0.5)
        img = (background + rng.uniform(0.2, 0.45) * shape
               + rng.uniform(-0.3, 0.3) * _clutter(rng, yy, xx) + rng.normal(0, 0.12, (size, size)))
        ims[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return ims, lbls.astype(np.int64)


def write_cat_car_h5(path, num_train=1900, num_test=1000, seed=0):
    """Write cat/car images in the course's .h5 layout: trainims (N, 32, 32)
    uint8, trainlbls (N,), testims, testlbls (1 = cat, 0 = car). Needs h5py."""
    try:
        import h5py
    except ImportError:
        raise ImportError("write_cat_car_h5 needs h5py: pip install h5py") from None
    train = cat_car_images(num_train, seed=seed)
    test = cat_car_images(num_test, seed=seed + 1)
    with h5py.File(path, "w") as f:
        f["trainims"], f["trainlbls"] = train
        f["testims"], f["testlbls"] = test
    return path
