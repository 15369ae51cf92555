"""Name matching: a candidate index over the listed names and a scorer that explains itself.

Search runs in two stages, so that a query touches a few dozen names of the ~25 000 on the OFAC
and UN lists instead of all of them:

1. **Blocking.** Every distinct list token (after :mod:`~freezedesk.screening.normalize`) is a
   vocabulary entry, reachable by its exact text, its phonetic key, its consonant skeleton, its
   one-character deletions (a SymSpell-style neighbourhood: two strings within one edit —
   substitution, insertion, deletion or adjacent transposition — share a deletion variant), and
   its prefixes (truncated names). Each query token finds its similar vocabulary tokens that
   way; every list name containing one collects ``similarity × token weight`` points; the best
   few dozen names go on.
2. **Scoring** (:meth:`NameIndex._score_name`). Query and list tokens are aligned greedily, best
   pair first, so token order never matters. The name similarity is a weighted average over
   the aligned pairs; a list token left over (a dropped middle name) costs little, a query token
   left over (a word the listed name does not have) costs more. Token weights come from how rare
   a token is on the lists: "muhammad", "al", "company" weigh little, "prigozhin" a lot. A
   second path compares the whole names glued together, for names split or joined differently
   ("AEROCARIBBEAN" / "Aero Caribbean", "Binladin" / "bin Ladin").

   The entity score is the best name's similarity — times :data:`WEAK_ALIAS_FACTOR` for a weak
   alias, so a weak alias alone never reaches the top — plus small adjustments: birth date
   (agreeing raises, contradicting lowers), nationality, and schema (a person query against a
   vessel is almost never the same thing).

Every :class:`Match` carries a JSON-serialisable ``explanation``: the query form used and the
transliterations applied, the list name and its strength, each token pair with its similarity
and why (exact, phonetic, typo, prefix, initial, skeleton), the unmatched tokens and each
feature's contribution to the score.

The index is immutable once built; :meth:`NameIndex.search` keeps all its state local, so any
number of threads may search one index at once.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rapidfuzz.distance import OSA, Indel

from freezedesk.screening.model import Entity, ListSnapshot, NameStrength
from freezedesk.screening.normalize import (
    ABJAD,
    AMBIGUOUS_LEGAL_FORMS,
    NameForm,
    Token,
    key,
    normalize_name,
    skeleton,
)

#: Default review threshold: a match at or above it is reported.
DEFAULT_THRESHOLD = 0.75
#: A name matched only through a weak alias is scaled by this factor: at most a review, never a
#: confident hit on its own.
WEAK_ALIAS_FACTOR = 0.85
#: Token pairs less similar than this do not count as matched.
TOKEN_MIN = 0.76
#: How many names of the blocking stage go on to full scoring, at most, and the share of the best
#: name's blocking points a name needs to go on.
CANDIDATES = 48
CANDIDATE_FLOOR = 0.5
#: Share of a list token's weight that is lost when the query does not contain it: little for a
#: given or middle name (dropping those is normal), much for a surname — known from the list's
#: "SURNAME, Given" or "Given SURNAME" spelling. And of a query token's weight when the list name
#: lacks it.
LIST_TOKEN_MISS = 0.4
LIST_SURNAME_MISS = 0.9
QUERY_TOKEN_MISS = 0.9
#: Weight of an initial ("J." for John): it supports, it does not identify.
INITIAL_WEIGHT = 0.25

_AMBIGUOUS_LEGAL = frozenset(form[0] for form in AMBIGUOUS_LEGAL_FORMS)

# Feature adjustments (added to the name similarity).
DOB_EXACT = 0.06
DOB_YEAR = 0.03
DOB_NEAR = -0.05
DOB_CONFLICT = -0.15
NATIONALITY_MATCH = 0.03
NATIONALITY_CONFLICT = -0.05
SCHEMA_CONFLICT = -0.3
SCHEMA_NEAR = -0.1


@dataclass(frozen=True, slots=True)
class Query:
    """What is screened: a name and, when known, schema (person, organisation, vessel, aircraft),
    birth date (ISO 8601, possibly partial: ``1970`` or ``1970-01``) and country (ISO alpha-2;
    compared with the entity's nationalities)."""

    name: str
    schema: str | None = None
    birth_date: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    entity_id: str
    score: float
    matched_name: str
    explanation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _ListName:
    entity: int
    text: str
    strength: NameStrength
    script: str | None
    tokens: tuple[int, ...]
    joined: str
    joined_sorted: str
    joined_skeleton: str
    joined_skeleton_sorted: str
    abjad: bool
    #: per token: the share of its weight lost when the query does not contain it
    miss: tuple[float, ...]


@dataclass(slots=True)
class _Scored:
    score: float
    name: int
    form: int
    pairs: list[tuple[int, int, float, str]]
    joined: float
    how: str


def _deletes(text: str) -> list[str]:
    return [text[:i] + text[i + 1 :] for i in range(len(text))]


class NameIndex:
    """Candidate index and scorer over one :class:`ListSnapshot`. Build with :meth:`build`."""

    def __init__(self) -> None:
        self.entities: list[Entity] = []
        self._entity_pos: dict[str, int] = {}
        self._entity_names: list[list[int]] = []
        self.names: list[_ListName] = []
        self.vocab: list[Token] = []
        self._weight: list[float] = []
        self._postings: list[list[int]] = []
        self._by_text: dict[str, int] = {}
        self._by_key: dict[str, list[int]] = {}
        self._by_skeleton: dict[str, list[int]] = {}
        self._by_delete: dict[str, list[int]] = {}
        self._sorted_texts: list[str] = []
        self._sorted_ids: list[int] = []
        self.build_seconds = 0.0

    # ----------------------------------------------------------------------------------------
    # Building
    # ----------------------------------------------------------------------------------------

    @classmethod
    def build(cls, snapshot: ListSnapshot | Iterable[Entity]) -> NameIndex:
        """Normalise every name of every entity and build the postings. Pure CPU, no I/O."""
        started = time.perf_counter()
        index = cls()
        entities = snapshot.entities.values() if isinstance(snapshot, ListSnapshot) else snapshot
        vocab_ids: dict[Token, int] = {}
        for entity in entities:
            pos = len(index.entities)
            index.entities.append(entity)
            index._entity_pos[entity.id] = pos
            own: list[int] = []
            seen: set[tuple[int, ...]] = set()
            for name in entity.names():
                for form in normalize_name(name.text, entity.schema):
                    ids = []
                    for token in form.tokens:
                        tid = vocab_ids.get(token)
                        if tid is None:
                            tid = len(index.vocab)
                            vocab_ids[token] = tid
                            index.vocab.append(token)
                            index._postings.append([])
                        ids.append(tid)
                    tids = tuple(ids)
                    if tids in seen:  # "SMITH, John" and "John SMITH": one name is enough
                        continue
                    seen.add(tids)
                    texts = [index.vocab[t].text for t in tids]
                    abjad = any(index.vocab[t].origin in ABJAD for t in tids)
                    miss = _miss_factors([index.vocab[t].text for t in tids], name.text, entity.schema)
                    list_name = _ListName(
                        entity=pos, text=name.text, strength=name.strength, script=name.script, tokens=tids,
                        joined="".join(texts), joined_sorted="".join(sorted(texts)),
                        joined_skeleton="".join(index.vocab[t].skeleton for t in tids),
                        joined_skeleton_sorted="".join(sorted(index.vocab[t].skeleton for t in tids)), abjad=abjad,
                        miss=miss,
                    )
                    nid = len(index.names)
                    index.names.append(list_name)
                    own.append(nid)
                    for t in set(tids):
                        index._postings[t].append(nid)
            index._entity_names.append(own)
        index._build_lookups()
        # Load the Japanese dictionary and anyascii's per-script tables now, so that the first
        # query in each script does not pay for it.
        for sample in ("山田太郎", "やまだ", "ヤマダ", "김정은", "Путин", "محمد", "Αλέξης", "בנימין", "李方伟"):
            normalize_name(sample)
        index.build_seconds = time.perf_counter() - started
        return index

    def _build_lookups(self) -> None:
        n = max(len(self.names), 2)
        # Token weight: inverse document frequency over list names, squashed into [0.25, 1] so
        # that frequent tokens still count a little and all rare ones count fully.
        for tid, token in enumerate(self.vocab):
            df = len(self._postings[tid])
            idf = math.log(n / df) / math.log(n / 3) if df > 3 else 1.0
            weight = INITIAL_WEIGHT if token.is_initial else 0.25 + 0.75 * min(1.0, max(0.0, idf))
            self._weight.append(weight)
            self._by_text[token.text] = tid
            self._by_key.setdefault(token.key, []).append(tid)
            self._by_skeleton.setdefault(token.skeleton, []).append(tid)
            if len(token.text) >= 3 and token.origin not in ABJAD:
                for d in {token.text, *_deletes(token.text)}:
                    self._by_delete.setdefault(d, []).append(tid)
        order = sorted(range(len(self.vocab)), key=lambda t: self.vocab[t].text)
        self._sorted_texts = [self.vocab[t].text for t in order]
        self._sorted_ids = order

    def __len__(self) -> int:
        return len(self.entities)

    def entity(self, entity_id: str) -> Entity:
        return self.entities[self._entity_pos[entity_id]]

    # ----------------------------------------------------------------------------------------
    # Token similarity
    # ----------------------------------------------------------------------------------------

    @staticmethod
    def token_similarity(q: Token, t: Token, prefix: bool = False) -> tuple[float, str]:
        """Similarity of a query token and a list token in [0, 1], and why.

        ``exact``; ``reading`` (another reading of a kanji, another spelling of a Korean
        syllable: 0.92); ``initial`` (J ~ John: 0.8); ``typo`` (optimal-string-alignment edit
        distance, so a transposition is one edit; a swap of two letters in a short token is lifted
        to 0.85); ``phonetic`` (same :func:`~.normalize.key`: edit similarity lifted towards 1,
        more for long tokens, whose keys rarely collide by chance); ``prefix`` (only when
        ``prefix`` is true — the query's last token, where a fixed-width field cuts a name);
        ``skeleton`` (consonant skeletons, for Arabic/Hebrew script and katakana, whose
        romanisations lose or invent vowels). Below :data:`TOKEN_MIN` the pair is not a match: 0.
        """
        if q.text == t.text:
            return 1.0, "exact"
        best, how = 0.0, ""
        same_abjad = q.origin in ABJAD and q.origin == t.origin
        abjad = (q.origin in ABJAD or t.origin in ABJAD) and not same_abjad
        if not abjad:
            for a in q.readings:
                for b in t.readings:
                    if a == b:
                        s, h = 0.92, "reading"
                        if s > best:
                            best, how = s, h
                        continue
                    la, lb = len(a), len(b)
                    if la == 1 or lb == 1:
                        if a[0] == b[0] and la != lb:
                            s, h = 0.8, "initial"
                        else:
                            continue
                    else:
                        s, h = OSA.normalized_similarity(a, b), "typo"
                        if la == lb and s < 0.85 and sorted(a) == sorted(b) and OSA.distance(a, b) == 1:
                            s = 0.85  # one adjacent swap in a short token
                        # keys of short tokens collide too often (ali/allah/eli) to mean anything
                        if la >= 4 and lb >= 4 and key(a) == key(b):
                            lift = 0.75 if min(la, lb) >= 6 else 0.5
                            s, h = max(s, s + (1.0 - s) * lift), "phonetic"
                        if prefix and 4 <= la < lb and b.startswith(a):
                            p = 0.7 + 0.25 * la / lb
                            if p > s:
                                s, h = p, "prefix"
                    if s > best:
                        best, how = s, h
        if abjad or q.origin == "kana" or t.origin == "kana":
            for a in q.readings if not abjad else (q.text,):
                sa = q.skeleton if a == q.text else skeleton(a)
                sb = t.skeleton
                if not sa or not sb:
                    continue
                # Short skeletons say little — "sm" fits Osama, Usama, Sami, Isma — so equal
                # skeletons earn less the shorter they are; a one-consonant skeleton ("r": Ali,
                # Rawi) only against a short Latin token. Unequal ones: edit similarity, reduced.
                if not abjad and _onset(a) != _onset(t.text):
                    continue  # katakana keeps a name's first sound: Rikushio is not Aleksei
                if sa == sb:
                    n = len(sa)
                    latin_len = len(t.text) if q.origin in ABJAD else len(a)
                    if n == 1 and latin_len > 5:
                        continue
                    s = 0.95 if n >= 3 else 0.9 if n == 2 else 0.8
                elif min(len(sa), len(sb)) >= 3:
                    s = 0.9 * OSA.normalized_similarity(sa, sb)
                else:
                    continue
                if s > best:
                    best, how = s, "skeleton"
        return (best, how) if best >= TOKEN_MIN else (0.0, "")

    # ----------------------------------------------------------------------------------------
    # Blocking
    # ----------------------------------------------------------------------------------------

    def _similar_vocab(self, q: Token, last: bool) -> dict[int, tuple[float, str]]:
        """Vocabulary tokens similar to query token ``q``, with their similarity."""
        found: set[int] = set()
        for reading in q.readings:
            tid = self._by_text.get(reading)
            if tid is not None:
                found.add(tid)
            if len(reading) == 1:
                continue  # an initial: scored against the candidates the other tokens bring
            found.update(self._by_key.get(key(reading), ()))
            if len(reading) >= 3:
                for d in (reading, *_deletes(reading)):
                    found.update(self._by_delete.get(d, ()))
            if last and len(reading) >= 4:  # truncated query token: list tokens it is a prefix of
                lo = bisect.bisect_left(self._sorted_texts, reading)
                hi = min(lo + 40, len(self._sorted_texts))
                for i in range(lo, hi):
                    if not self._sorted_texts[i].startswith(reading):
                        break
                    found.add(self._sorted_ids[i])
                for cut in range(3, len(reading)):  # query token glues list tokens: "aerocaribbean"
                    tid = self._by_text.get(reading[:cut])
                    if tid is not None:
                        found.add(tid)
        if q.origin in ABJAD or q.origin == "kana":
            skels = {q.skeleton} if q.origin in ABJAD else {skeleton(r) for r in q.readings}
            for s in skels:
                if len(s) >= 2:
                    found.update(self._by_skeleton.get(s, ()))
        out: dict[int, tuple[float, str]] = {}
        for tid in found:
            sim = self.token_similarity(q, self.vocab[tid], last)
            if sim[0] > 0:
                out[tid] = sim
        return out

    def _query_weight(self, q: Token) -> float:
        if q.is_initial:
            return INITIAL_WEIGHT
        if q.text in _AMBIGUOUS_LEGAL:  # "Acex Oy": kept when the schema is unknown, but weighs nothing
            return 0.05
        tid = self._by_text.get(q.text)
        return self._weight[tid] if tid is not None else 1.0

    # ----------------------------------------------------------------------------------------
    # Scoring
    # ----------------------------------------------------------------------------------------

    def _score_name(
        self, form: NameForm, weights: Sequence[float], nid: int, cache: dict[tuple[int, int], tuple[float, str]],
        fidx: int,
    ) -> _Scored:
        name = self.names[nid]
        qtokens = form.tokens
        last = len(qtokens) - 1
        pairs_all: list[tuple[float, int, int, str]] = []
        for i, q in enumerate(qtokens):
            for j, tid in enumerate(name.tokens):
                ck = (i, tid)
                sim = cache.get(ck)
                if sim is None:
                    sim = self.token_similarity(q, self.vocab[tid], i == last)
                    cache[ck] = sim
                if sim[0] > 0:
                    pairs_all.append((sim[0], i, j, sim[1]))
        pairs_all.sort(reverse=True)
        used_q: set[int] = set()
        used_c: set[int] = set()
        pairs: list[tuple[int, int, float, str]] = []
        for s, i, j, h in pairs_all:
            if i in used_q or j in used_c:
                continue
            used_q.add(i)
            used_c.add(j)
            pairs.append((i, j, s, h))
        num = den = 0.0
        for i, j, s, h in pairs:
            w = weights[i] + self._weight[name.tokens[j]]
            # An initial only confirms its first letter: the pair earns the weight of two
            # initials, while the full token it stands against still counts in the denominator.
            num += s * (2 * INITIAL_WEIGHT if h == "initial" else w)
            den += w
        # Left-over tokens. One left over on each side is a *conflict* (another given name, not
        # a missing one: "Fatima X" vs "X, Carlina"), and costs both tokens' full weight; other
        # left-overs cost their miss share.
        extra_q = sorted((weights[i] for i in range(len(qtokens)) if i not in used_q), reverse=True)
        extra_c = sorted(((self._weight[tid], name.miss[j]) for j, tid in enumerate(name.tokens) if j not in used_c),
                         reverse=True)
        conflicts = min(len(extra_q), len(extra_c))
        den += sum(extra_q[:conflicts]) + sum(w for w, _ in extra_c[:conflicts])
        den += QUERY_TOKEN_MISS * sum(extra_q[conflicts:]) + sum(w * m for w, m in extra_c[conflicts:])
        aligned = num / den if den else 0.0
        # A single matched token out of several on both sides is a shared surname or given name,
        # not the same person: cap it below any sensible threshold.
        if len(pairs) == 1 and len(qtokens) > 1 and len(name.tokens) > 1:
            aligned = min(aligned, 0.6)
        joined = self._joined_similarity(form, name) if len(qtokens) != len(name.tokens) else 0.0
        if joined > aligned:
            return _Scored(joined, nid, fidx, pairs, joined, "joined")
        return _Scored(aligned, nid, fidx, pairs, joined, "tokens")

    @staticmethod
    def _joined_similarity(form: NameForm, name: _ListName) -> float:
        """Whole-name comparison with the spaces removed, in written and in sorted token order
        (scaled a little below the token path, which it only backs up), for names segmented
        differently — so only tried when the token counts differ. Skeletons are compared when one
        side is written in an abjad or katakana."""
        texts = [t.text for t in form.tokens]
        qj = "".join(texts)
        if len(qj) < 6:
            return 0.0
        skel_mode = name.abjad or any(t.origin in ABJAD or t.origin == "kana" for t in form.tokens)
        best = max(Indel.normalized_similarity(qj, name.joined),
                   Indel.normalized_similarity("".join(sorted(texts)), name.joined_sorted))
        if skel_mode:
            qs = "".join(t.skeleton for t in form.tokens)
            if len(qs) >= 4:
                best = max(best, 0.92 * Indel.normalized_similarity(qs, name.joined_skeleton),
                           0.92 * Indel.normalized_similarity("".join(sorted(t.skeleton for t in form.tokens)),
                                                              name.joined_skeleton_sorted))
        return 0.96 * best if best >= 0.88 else 0.0

    def _forms(self, query: Query) -> list[tuple[NameForm, list[float]]]:
        out = []
        for form in normalize_name(query.name, query.schema):
            out.append((form, [self._query_weight(t) for t in form.tokens]))
        return out

    def _candidates(self, forms: list[tuple[NameForm, list[float]]],
                    caches: list[dict[tuple[int, int], tuple[float, str]]]) -> list[tuple[int, int]]:
        """Blocking: the (form, name) pairs worth scoring."""
        out: list[tuple[int, int]] = []
        for fidx, (form, weights) in enumerate(forms):
            acc: dict[int, float] = {}
            cache = caches[fidx]
            for i, q in enumerate(form.tokens):
                if q.is_initial:
                    continue
                similar = self._similar_vocab(q, i == len(form.tokens) - 1)
                best_per_name: dict[int, float] = {}
                for tid, sim in similar.items():
                    cache[(i, tid)] = sim
                    credit = sim[0] * (weights[i] + self._weight[tid])
                    for nid in self._postings[tid]:
                        if best_per_name.get(nid, 0.0) < credit:
                            best_per_name[nid] = credit
                for nid, credit in best_per_name.items():
                    acc[nid] = acc.get(nid, 0.0) + credit
            if not acc:
                continue
            ranked = sorted(acc.items(), key=lambda kv: kv[1], reverse=True)[:CANDIDATES]
            # A name that collected less than half the points of the best one shares only
            # frequent or weak tokens with the query: it cannot come out on top.
            floor = CANDIDATE_FLOOR * ranked[0][1]
            out.extend((fidx, nid) for nid, points in ranked if points >= floor)
        return out

    def search(self, query: Query, threshold: float = DEFAULT_THRESHOLD, limit: int = 10) -> list[Match]:
        """The entities whose score is at least ``threshold``, best first, at most ``limit``."""
        forms = self._forms(query)
        caches: list[dict[tuple[int, int], tuple[float, str]]] = [{} for _ in forms]
        pairs = self._candidates(forms, caches)
        return self._rank(query, forms, caches, pairs, threshold, limit)

    def search_entities(self, query: Query, entity_ids: Iterable[str], threshold: float = DEFAULT_THRESHOLD,
                        limit: int = 10) -> list[Match]:
        """Like :meth:`search`, restricted to ``entity_ids`` and without blocking: every name of
        those entities is scored. For re-screening accounts against the entities a list update
        added or changed. Unknown ids are ignored."""
        forms = self._forms(query)
        caches: list[dict[tuple[int, int], tuple[float, str]]] = [{} for _ in forms]
        pairs: list[tuple[int, int]] = []
        for eid in entity_ids:
            pos = self._entity_pos.get(eid)
            if pos is None:
                continue
            for nid in self._entity_names[pos]:
                pairs.extend((fidx, nid) for fidx in range(len(forms)))
        return self._rank(query, forms, caches, pairs, threshold, limit)

    def _rank(self, query: Query, forms: list[tuple[NameForm, list[float]]],
              caches: list[dict[tuple[int, int], tuple[float, str]]], pairs: list[tuple[int, int]],
              threshold: float, limit: int) -> list[Match]:
        best: dict[int, tuple[float, _Scored, dict[str, float]]] = {}
        for fidx, nid in pairs:
            form, weights = forms[fidx]
            scored = self._score_name(form, weights, nid, caches[fidx], fidx)
            name = self.names[nid]
            strength_adj = 0.0
            if name.strength == "weak":
                strength_adj = scored.score * (WEAK_ALIAS_FACTOR - 1.0)
            prev = best.get(name.entity)
            if prev is not None and prev[1].score + prev[2]["alias_strength"] >= scored.score + strength_adj:
                continue
            best[name.entity] = (scored.score + strength_adj, scored, {"alias_strength": strength_adj})
        results: list[tuple[float, int, _Scored, dict[str, float]]] = []
        for pos, (name_score, scored, feats) in best.items():
            if name_score < threshold - 0.1:  # features add at most 0.06: skip hopeless ones early
                continue
            entity = self.entities[pos]
            feats = {"name": round(scored.score, 4), **feats, **_features(query, entity)}
            total = min(1.0, max(0.0, sum(feats.values())))
            if total >= threshold:
                results.append((total, pos, scored, feats))
        # Equal scores (two companies whose names differ only by legal form): the list name
        # closest to the query as written comes first.
        raw = query.name.casefold()
        results.sort(key=lambda r: (-r[0], -Indel.normalized_similarity(raw, self.names[r[2].name].text.casefold()),
                                    self.entities[r[1]].id))
        return [self._match(query, forms, total, pos, scored, feats) for total, pos, scored, feats in results[:limit]]

    def _match(self, query: Query, forms: list[tuple[NameForm, list[float]]], total: float, pos: int,
               scored: _Scored, feats: dict[str, float]) -> Match:
        entity = self.entities[pos]
        name = self.names[scored.name]
        form = forms[scored.form][0]
        matched_q = {i for i, _, _, _ in scored.pairs}
        matched_c = {j for _, j, _, _ in scored.pairs}
        explanation: dict[str, Any] = {
            "query": {"name": query.name, **form.describe()},
            "list_name": {"text": name.text, "strength": name.strength,
                          **({"script": name.script} if name.script else {}),
                          "tokens": [self.vocab[t].text for t in name.tokens]},
            "method": scored.how,
            "token_matches": [
                {"query": form.tokens[i].text, "list": self.vocab[name.tokens[j]].text, "similarity": round(s, 3),
                 "how": h}
                for i, j, s, h in sorted(scored.pairs)
            ],
            "unmatched_query_tokens": [t.text for i, t in enumerate(form.tokens) if i not in matched_q],
            "unmatched_list_tokens": [self.vocab[t].text for j, t in enumerate(name.tokens) if j not in matched_c],
            "features": {k: round(v, 4) for k, v in feats.items()},
            "score": round(total, 4),
        }
        if scored.how == "joined":
            explanation["joined_similarity"] = round(scored.joined, 3)
        return Match(entity.id, round(total, 4), name.text, explanation)


def _onset(text: str) -> str:
    """The first sound of a romanised token as katakana can write it: l/r, v/b and f/h are one,
    vowels are one class."""
    first = text[:1]
    if first in "aeiou":
        return "V"
    return {"l": "r", "v": "b", "f": "h", "w": "V", "y": "V"}.get(first, first)


def _miss_factors(tokens: list[str], text: str, schema: str) -> tuple[float, ...]:
    """Per list token, the share of its weight lost when a query lacks it. For a person, the
    surname (see :func:`_surname_tokens`) and the first given name — the person's own name; what
    follows is often a father's or grandfather's name — cost :data:`LIST_SURNAME_MISS`; other
    tokens, and every token of other schemas, :data:`LIST_TOKEN_MISS`."""
    if schema != "person":
        return tuple(LIST_TOKEN_MISS for _ in tokens)
    surnames = _surname_tokens(text, schema)
    first_given = next((i for i, t in enumerate(tokens) if t not in surnames and len(t) > 1), None)
    return tuple(LIST_SURNAME_MISS if (t in surnames or i == first_given) else LIST_TOKEN_MISS
                 for i, t in enumerate(tokens))


def _surname_tokens(text: str, schema: str) -> set[str]:
    """The normalised tokens of a person's surname, when the list spelling shows it: before the
    comma in "SURNAME, Given", or the upper-case words in a mixed-case "Given SURNAME"."""
    if "," in text:
        head = text.split(",", 1)[0]
    else:
        words = [w for w in text.split() if any(c.isalpha() for c in w)]
        upper = [w for w in words if w.isupper() and len(w) > 1]
        if not upper or len(upper) == len(words):
            return set()
        head = " ".join(upper)
    return set(_head_tokens(head, schema))


@lru_cache(maxsize=65536)
def _head_tokens(head: str, schema: str) -> tuple[str, ...]:
    forms = normalize_name(head, schema)
    return forms[0].texts if forms else ()


# --------------------------------------------------------------------------------------------
# Features other than the name
# --------------------------------------------------------------------------------------------


def _date_parts(value: str) -> tuple[int, ...]:
    parts = []
    for piece in value.strip()[:10].split("-"):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def birth_date_adjustment(query_date: str | None, entity_dates: Sequence[str]) -> float:
    """Compare a (partial) query birth date with the entity's (partial) birth dates at their
    common precision; the most favourable listed date counts (lists give alternatives).

    Same full date: +0.06; same year (or year-month) only: +0.03; a year off by one (lists and
    documents often disagree by a year): -0.05; otherwise -0.15. No date on either side: 0.
    """
    if not query_date or not entity_dates:
        return 0.0
    q = _date_parts(query_date)
    if not q:
        return 0.0
    best = DOB_CONFLICT
    for value in entity_dates:
        e = _date_parts(value)
        if not e:
            continue
        n = min(len(q), len(e))
        if q[:n] == e[:n]:
            best = max(best, DOB_EXACT if n == 3 else DOB_YEAR)
        elif abs(q[0] - e[0]) <= 1 and (q[0] != e[0] or n > 1):
            best = max(best, DOB_NEAR)
    return best


def nationality_adjustment(country: str | None, nationalities: Sequence[str]) -> float:
    """+0.03 when the query country is one of the entity's nationalities, -0.05 when the entity
    has nationalities and the country is none of them (residence and nationality often differ,
    so the penalty is mild)."""
    if not country or not nationalities:
        return 0.0
    return NATIONALITY_MATCH if country.upper() in nationalities else NATIONALITY_CONFLICT


def schema_adjustment(query_schema: str | None, entity_schema: str) -> float:
    """A person is never a company, vessel or aircraft: -0.3. A company screened against a vessel
    or aircraft (owner and asset are often named alike): -0.1. Unknown or equal: 0."""
    if not query_schema or query_schema == entity_schema:
        return 0.0
    if "person" in (query_schema, entity_schema):
        return SCHEMA_CONFLICT
    return SCHEMA_NEAR


def _features(query: Query, entity: Entity) -> dict[str, float]:
    return {
        "birth_date": birth_date_adjustment(query.birth_date, entity.birth_dates),
        "nationality": nationality_adjustment(query.country, entity.nationalities),
        "schema": schema_adjustment(query.schema, entity.schema),
    }
