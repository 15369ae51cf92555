"""Name normalisation: turn a name as a customer or a list writes it into comparable tokens.

The matcher never compares raw strings. Every name, on the list side when the index is built and
on the query side at search time, goes through :func:`normalize_name`, which returns one or more
:class:`NameForm` — token tuples plus a record of what was done to get them, so that a hit can
explain itself ("Cyrillic → Latin", "removed title 'sheikh'", "homoglyphs replaced"…).

The steps, in order, and why each exists:

1. **Unicode NFKC** folds compatibility characters a person may paste: full-width Ｌａｔｉｎ,
   half-width ｶﾀｶﾅ, ligatures (ﬁ), circled and parenthesised forms (㈱ → (株)).
2. **Invisible characters** (zero-width space/joiner, soft hyphen, bidi controls, Hangul fillers,
   tag characters…) are removed: inserted into a name they defeat naive comparison while the name
   still *looks* the same — a classic evasion.
3. **Homoglyphs**: a Cyrillic ``а`` or Greek ``Α`` inside an otherwise Latin name is a look-alike
   (another evasion), so it is mapped to the Latin letter it imitates — only when the token mixes
   scripts, or when an all-look-alike token sits in a Latin name. A genuinely Cyrillic name is
   transliterated instead (step 5).
4. **Honorifics** in the original script (様, さん, 氏, 殿, 씨, 先生…) and **legal forms**
   (株式会社, 有限会社, 有限公司…) are cut before transliteration, because after it they are
   indistinguishable from name syllables.
5. **Transliteration** by script, each with a maintained library:
   Cyrillic, Greek, Latin diacritics, Chinese (pinyin) and Korean (Revised Romanisation) with
   ``anyascii``; Japanese with ``cutlet`` (MeCab + UniDic-lite: the dictionary knows name
   readings and the Latin spelling of katakana loan names, ジョン → John), keeping MeCab's
   next-best readings as alternatives, since a kanji name often has several (建市: Kenshi /
   Kenichi); a kana chunk is one name word. Han-only text may be Chinese or Japanese, so both
   forms are produced. Arabic and Hebrew are *abjads*: short
   vowels are not written, so no transliteration can recover ``Muhammad`` from ``محمد``; those
   tokens are compared on a consonant **skeleton** (``mhmd``) instead.
6. **Case and punctuation**: lower case; apostrophes vanish (O'Brien → obrien), every other
   punctuation mark splits tokens (al-Qaida → al qaida, J.R. → j r).
7. **Titles** (mr, dr, sheikh, haji…) and, for organisations, **legal forms** at either end of the
   name (llc, ltd, ooo, gmbh, jsc, s a de c v, kabushiki kaisha…) are removed.
8. **Arabic name structure**: ``Abdul Rahman`` / ``Abdelrahman`` / ``Abd al-Rahman`` all become
   ``abd rahman``; the article ``al``/``el`` (and sun-letter forms ``ash-Sh…``) is dropped;
   ``ibn``/``ben``/``bint`` → ``bin``.
9. **Romanisation variants**: a small table maps frequent variant spellings to one canonical
   token (Mohammed/Muhammad/Mohamed → muhammad, Yousef/Youssef → yusuf); everything the table
   does not know is caught by the phonetic :func:`key` (vowel-insensitive, digraph-folding) that
   the matcher compares as well.

Tokens are returned in the order written; the matcher compares them order-independently.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from anyascii import anyascii

Origin = Literal["latin", "cyrillic", "greek", "arabic", "hebrew", "han", "kana", "hangul"]
#: Origins whose romanisation drops vowels: compare those tokens on the consonant skeleton.
ABJAD: frozenset[str] = frozenset({"arabic", "hebrew"})


@dataclass(frozen=True, slots=True)
class Token:
    """One name token.

    ``text`` is lower-case ASCII; ``alts`` are other plausible readings of the same source text
    (a kanji name read two ways, a Korean surname's usual spellings). ``key`` folds romanisation
    variants (see :func:`key`), ``skeleton`` keeps consonants only (see :func:`skeleton`).
    ``origin`` is the script the token was written in.
    """

    text: str
    key: str
    skeleton: str
    origin: Origin = "latin"
    alts: tuple[str, ...] = ()

    @property
    def readings(self) -> tuple[str, ...]:
        return (self.text, *self.alts)

    @property
    def is_initial(self) -> bool:
        return len(self.text) == 1


@dataclass(frozen=True, slots=True)
class NameForm:
    """One normalised reading of a name: tokens plus what was done to obtain them."""

    original: str
    tokens: tuple[Token, ...]
    #: steps that changed the text, e.g. ``("cyrillic→latin", "homoglyphs", "removed:ooo")``
    steps: tuple[str, ...] = ()
    #: for Han text, which language reading this form is: ``"zh"`` or ``"ja"``; else ``""``
    reading: str = ""

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(t.text for t in self.tokens)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (stored with a screening hit)."""
        return {
            "original": self.original,
            "tokens": [t.text if not t.alts else "/".join(t.readings) for t in self.tokens],
            "steps": list(self.steps),
            **({"reading": self.reading} if self.reading else {}),
        }


# --------------------------------------------------------------------------------------------
# Character classes
# --------------------------------------------------------------------------------------------

#: Invisible characters that NFKC keeps: Hangul fillers, Mongolian vowel separator, Khmer
#: inherent vowels, the combining grapheme joiner. Every format character (category Cf: ZWSP,
#: ZWJ, ZWNJ, LRM/RLM, bidi embeddings and isolates, word joiner, BOM, soft hyphen, tags) goes too.
_INVISIBLE_EXTRA = frozenset("\u115f\u1160\u3164\uffa0\u180e\u17b4\u17b5\u034f\u0640")


def _script(ch: str) -> str:
    """The script of one character, coarse: what matters is which transliterator applies."""
    o = ord(ch)
    if o < 0x80:
        return "latin" if ch.isalpha() else "common"
    if 0x00C0 <= o <= 0x024F or 0x1E00 <= o <= 0x1EFF:
        return "latin" if ch.isalpha() else "common"
    if 0x0400 <= o <= 0x052F:
        return "cyrillic"
    if 0x0370 <= o <= 0x03FF or 0x1F00 <= o <= 0x1FFF:
        return "greek"
    if 0x0600 <= o <= 0x06FF or 0x0750 <= o <= 0x077F or 0x08A0 <= o <= 0x08FF or 0xFB50 <= o <= 0xFEFF:
        return "arabic"
    if 0x0590 <= o <= 0x05FF or 0xFB1D <= o <= 0xFB4F:
        return "hebrew"
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9F:
        return "kana"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or o >= 0x20000 or o == 0x3005:
        return "han"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    return "latin" if ch.isalpha() else "common"


# Cyrillic and Greek letters that look like Latin ones, keyed by their lower-case form (case is
# folded first, so an upper-case look-alike such as Cyrillic "Н" arrives as "н" and maps to "h").
_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
        "ԛ": "q", "ԝ": "w", "ӏ": "l", "һ": "h", "ү": "y", "ɡ": "g",
        # Greek
        "α": "a", "β": "b", "ε": "e", "ζ": "z", "η": "h", "ι": "i", "κ": "k", "μ": "m", "ν": "n",
        "ο": "o", "ρ": "p", "τ": "t", "υ": "y", "χ": "x", "ϲ": "c", "ϳ": "j",
    }
)  # fmt: skip
_HOMOGLYPH_CHARS = frozenset(k for k in "авеёкмнорстухіїјѕԁԛԝӏһүɡαβεζηικμνορτυχϲϳ")


def strip_invisible(text: str) -> str:
    """Remove format (Cf) and other invisible characters."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if ch not in _INVISIBLE_EXTRA and unicodedata.category(ch) != "Cf")


def fix_homoglyphs(text: str) -> tuple[str, bool]:
    """Map Cyrillic/Greek look-alikes to Latin where the context says they are look-alikes.

    ``text`` must already be case-folded. A whitespace-separated chunk that mixes Latin letters
    with Cyrillic/Greek ones is mapped; so is an all-Cyrillic/Greek chunk made only of
    look-alikes when the name otherwise is Latin ("Ваnk" or "ВАНК Melli" → "bank melli").
    Returns the text and whether anything changed.
    """
    if text.isascii():
        return text, False
    chunks = text.split(" ")
    kinds = []
    for chunk in chunks:
        scripts = {_script(ch) for ch in chunk} - {"common"}
        kinds.append(scripts)
    has_latin = any(k == {"latin"} for k in kinds)
    changed = False
    out = []
    for chunk, scripts in zip(chunks, kinds, strict=True):
        foreign = scripts & {"cyrillic", "greek"}
        if foreign and (
            "latin" in scripts
            or (has_latin and scripts <= {"cyrillic", "greek"} and all(
                ch in _HOMOGLYPH_CHARS for ch in chunk if _script(ch) in ("cyrillic", "greek")))
        ):
            mapped = chunk.translate(_HOMOGLYPHS)
            changed = changed or mapped != chunk
            out.append(mapped)
        else:
            out.append(chunk)
    return " ".join(out), changed


# --------------------------------------------------------------------------------------------
# Vocabulary: titles, legal forms, canonical spellings
# --------------------------------------------------------------------------------------------

def _wordlist(text: str) -> list[str]:
    """Whitespace-separated words: long vocabularies read better as text than as literals."""
    return text.split()


#: Honorifics written after a name in CJK scripts; removed before transliteration.
_CJK_HONORIFIC = re.compile(
    r"(?:様|さま|サマ|さん|サン|氏|殿|どの|君|くん|ちゃん|先生|せんせい|女士|小姐|씨|님|선생님?)(?=\s|$)"
)
#: Legal forms written in CJK scripts (anywhere in the name: 株式会社 may precede or follow).
_CJK_LEGAL = re.compile(
    r"株式会社|有限会社|合同会社|合資会社|合名会社|一般社団法人|一般財団法人|\(株\)|\(有\)|\(合\)|"
    r"股份有限公司|有限责任公司|有限公司|有限責任公司|股份公司|(?<=.)公司$|주식회사|유한회사|\(주\)|㈜"
)

#: Honorifics and titles (romanised, lower case). Words that are also common given names or
#: surnames (Amir, Sultan, Hafiz, Major, Khan…) are deliberately absent: removing a real name
#: token costs more than keeping a title.
TITLES: frozenset[str] = frozenset(
    _wordlist(
        """
        mr mrs ms miss mx mister madam madame dr doctor prof professor sir dame lord lady monsieur mme mlle
        herr frau sr sra srta senor senora sheikh shaikh shaykh sheik cheikh shaik haji hajji hadji
        alhaji alhaj alhajj mullah mulla maulana mawlana maulvi mawlawi moulavi mufti qari hajj gen brig col
        capt lt sgt cpl rev reverend fr esq jr snr jnr ii iii iv sama dono sensei
        """
    )
)

def _legal_phrases() -> tuple[tuple[str, ...], ...]:
    """Legal forms as token sequences, longest first (so "s a de c v" wins over "s a")."""
    multi = [
        "l l c", "s a", "s a s", "s a r l", "s a c", "s r l", "s p a", "b v", "n v", "a s", "k k",
        "kabushiki kaisha", "kabushiki gaisha", "yugen kaisha", "yugen gaisha", "godo kaisha",
        "fz llc", "pte ltd", "pvt ltd", "private limited", "sdn bhd", "co ltd", "co limited",
        "company limited", "s a de c v", "sa de cv", "de c v", "s de r l de c v", "s de rl",
        "s de r l", "s de rl de cv", "cia ltda", "e i r l", "s l", "s l u", "sociedad anonima",
        "joint stock company",
        "open joint stock company", "closed joint stock company", "public joint stock company",
        "limited liability company", "limited liability partnership",
        "obshchestvo s ogranichennoy otvetstvennostyu", "aktsionernoye obshchestvo",
        "gesellschaft mit beschrankter haftung", "sherkate sahami khass", "sherkat sahami khass",
        "sahami khass", "sahami aam", "public company limited",
    ]  # fmt: skip
    single = _wordlist(
        """
        llc ltd limited inc incorporated corp corporation co company plc gmbh mbh sa sas sarl sac saic
        srl spa bv nv oyj aps asa kk kabushikigaisha kabushikikaisha ooo oao zao jsc ojsc cjsc pjsc tov
        aktiengesellschaft fze fzco fzc fzllc llp pte pvt bhd tbk ltda eirl slu sherkat sherkate pjs
        """
    )
    phrases = {tuple(p.split()) for p in multi} | {(s,) for s in single}
    return tuple(sorted(phrases, key=len, reverse=True))


#: Legal forms; removed from either end of an organisation's name (step 7).
LEGAL_FORMS: tuple[tuple[str, ...], ...] = _legal_phrases()
_LONG_LEGAL_WORDS = frozenset(
    _wordlist("limited incorporated corporation company kabushiki kaisha gesellschaft aktiengesellschaft")
)
#: Short legal forms that are also personal names or words (Pao and An are surnames, "as" a
#: word): removed only when the name is known to be an organisation's.
AMBIGUOUS_LEGAL_FORMS: tuple[tuple[str, ...], ...] = tuple(
    (w,) for w in _wordlist("pao ao as ab ag kg sl lp pp oy ug jv cia")
)

#: Arabic-script articles written as a separate token.
_ARTICLES = frozenset({"al", "el"})
#: Sun-letter assimilated articles (ash-Shami, ad-Din, ar-Rahman): dropped when the next token
#: starts with the assimilated consonant, so Korean "An" or Spanish "de" are left alone.
_SUN_ARTICLES = {
    "ad": "d", "an": "n", "ar": "r", "as": "s", "ash": "sh", "at": "t", "az": "z", "ath": "th", "adh": "dh",
}  # fmt: skip
_ABD_PREFIXES = ("abdoul", "abdul", "abdel", "abdal", "abdol", "abdur", "abdus", "abduz", "abdu", "abd")

#: Canonical spellings of frequent romanisation variants. Only variants that the phonetic key
#: does not already fold (different consonants or letter counts) need to be here, but listing the
#: common ones keeps explanations readable ("mohammed → muhammad").
_CANONICAL_GROUPS = """
muhammad mohammed mohammad mohamed mohamad muhammed muhamad mohammod mohamud mahomed muhamed mohd mohamet mouhamed
ahmad ahmed ahmet achmed
abdullah abdallah abdulla abdalla abdoullah
husayn hussein hussain husain hossein husein houssein hussien husseyn hosein hosain
hasan hassan hasson
yusuf youssef yousef yousif yusef yousuf yussuf yusif yosef youcef yousseph jusuf
usama osama oussama ousama
umar omar omer
uthman othman osman usman othmane osmane
khalid khaled khaleed
said saeed saied sayeed saaed
sayyid sayed syed sayyed seyed seyyed
mahmud mahmoud mehmood mahmood mahmoudi
mustafa mustapha moustafa mostafa moustapha mostapha
ibrahim ebrahim ibraheem brahim ibrahem
ismail ismael esmail ismaeel
abu abou abo
bin ibn ben bint binti bte
nasir nasser naser nassir nasr
jamal gamal djamal
qadhafi gaddafi kadhafi gadhafi qaddafi kaddafi gheddafi
faisal faysal feisal faycal
karim kareem
rahman rehman
rahim raheem
sulayman suleiman sulaiman soliman suleyman sleiman
yahya yahia yehia yehya
zakariya zakaria zakariyya zakariah
aleksandr alexander alexandr aleksander alexandre
aleksei alexei alexey aleksey
sergei sergey serguei
evgenii yevgeny evgeny evgeniy yevgeniy yevgenii evgueni
dmitrii dmitry dmitri dmitriy
yurii yuri yury yuriy iurii
andrei andrey andrej
nikolai nikolay
mikhail michail
"""
_CANONICAL: dict[str, str] = {
    variant: group.split()[0] for group in _CANONICAL_GROUPS.strip().splitlines() for variant in group.split()
}

#: The usual Latin spellings of frequent Korean surnames (Revised Romanisation gives only one).
_KOREAN_SURNAMES: dict[str, tuple[str, ...]] = {
    "김": ("kim", "gim"), "이": ("lee", "yi", "rhee", "ri", "i"), "리": ("ri", "lee", "li"),
    "박": ("park", "pak", "bak"), "최": ("choi", "choe"), "정": ("jung", "jeong", "chung", "jong", "chong"),
    "강": ("kang", "gang"), "조": ("cho", "jo"), "윤": ("yoon", "yun"), "장": ("jang", "chang"),
    "임": ("lim", "im", "rim"), "림": ("rim", "lim"), "한": ("han",), "오": ("oh", "o"),
    "서": ("seo", "suh", "so"), "신": ("shin", "sin"), "권": ("kwon", "gwon"), "황": ("hwang",),
    "안": ("ahn", "an"), "송": ("song",), "류": ("ryu", "yoo", "yu"), "유": ("yoo", "yu", "ryu"),
    "홍": ("hong",), "전": ("jeon", "jun", "chon", "jon"), "고": ("ko", "go"), "문": ("moon", "mun"),
    "손": ("son", "sohn"), "양": ("yang", "ryang"), "량": ("ryang", "yang"), "배": ("bae", "pae"),
    "백": ("baek", "paek"), "허": ("heo", "hur", "ho"), "남": ("nam",), "심": ("shim", "sim"),
    "노": ("noh", "roh", "no"), "로": ("ro", "roh"), "주": ("ju", "joo", "chu"), "하": ("ha",),
    "곽": ("kwak",), "성": ("sung", "seong", "song"), "차": ("cha",), "우": ("woo", "u"),
    "구": ("koo", "ku"), "민": ("min",), "현": ("hyun", "hyon"), "방": ("bang", "pang"),
}  # fmt: skip

_SPLIT = re.compile(r"[^a-z0-9]+")
_APOSTROPHES = re.compile(r"['’‘`´ʼʻʹ′]")


# --------------------------------------------------------------------------------------------
# Phonetic key and consonant skeleton
# --------------------------------------------------------------------------------------------

_KEY_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"tsu", "tu"),  # Hepburn tsu / Kunrei tu
        (r"tsch|tch|dzh|dj|zh", "j"),
        (r"sch|sh", "s"),
        (r"ph", "f"),
        (r"ck", "k"),
        (r"kh", "h"),
        (r"gh", "g"),
        (r"dh", "d"),
        (r"th", "t"),
        (r"ch", "c"),
        (r"ts|tz", "c"),
        (r"x", "ks"),
        (r"q", "k"),
        (r"c(?=[eiy])", "s"),
        (r"c", "k"),
        (r"w", "v"),
        (r"^y(?=[aeiou])", ""),
        (r"(?<=[aeiouy])h(?![aeiouy])", ""),  # Satoh/Sato, Ahmad/Amad: h that only lengthens a vowel
        (r"(?<=.)y", "i"),
        (r"(?<=o)[uo]$", ""),  # Japanese long o at the end: Satou, Satoo → Sato
    )
)
_FINAL_VOWELS = re.compile(r"[aeiou]+$")
_VOWEL_RUN = re.compile(r"[aeiou]+")
_DOUBLE = re.compile(r"(.)\1+")


@lru_cache(maxsize=200_000)
def key(text: str) -> str:
    """A phonetic key that folds romanisation variants of one name to one string.

    Medial vowel runs become one placeholder (Mohammed/Muhammad, Youssef/Yusuf) and a final run
    its last vowel (Sato/Satou, Sergei/Sergey; but Lucia ≠ Lucio), common
    digraphs fold (kh→h, sh→s, th→t, ph→f, dj/zh→j), c/q/k merge, doubled letters collapse, a
    vowel-lengthening ``h`` disappears (Satoh). Keys collide more than names do, so the matcher
    uses a key match as a boost to the edit-distance similarity, never as a match by itself.
    """
    out = text
    for pattern, repl in _KEY_RULES:
        out = pattern.sub(repl, out)
    # Medial vowel runs fold to one placeholder; a final vowel keeps its identity, because there
    # it often marks gender (Lucia/Lucio, Mario/Maria).
    m = _FINAL_VOWELS.search(out)
    final = m.group()[-1] if m else ""
    if m:
        out = out[: m.start()]
    out = _VOWEL_RUN.sub("a", out)
    return _DOUBLE.sub(r"\1", out) + final


_SKEL_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"tsch|tch|dzh|dj|zh|ch", "j"),
        (r"sch|sh", "s"),
        (r"ph", "f"),
        (r"ck", "k"),
        (r"kh", "h"),
        (r"gh", "g"),
        (r"dh", "d"),
        (r"th|ts|tz", "s"),
        (r"x", "ks"),
        (r"[qc]", "k"),
        (r"l", "r"),
        (r"[vp]", "b"),
        (r"z", "d"),  # ذ ض ظ are written d, dh, z or th depending on the romanisation
        (r"ng(?![aeiou])", "n"),  # ン stands for final -ng (Korean, Chinese names)
        (r"(?<=.)[wy]", ""),
        (r"(?<=[aeiou])h$", ""),
        (r"n(?=[bm])", "m"),
        (r"(?<=[^aeiou])h", ""),
        (r"f", "h"),  # katakana フ is both fu and hu; Arabic ف/ح are confused in Latin spellings
        (r"[aeiou]", ""),
        (r"(.)\1+", r"\1"),
    )
)


@lru_cache(maxsize=200_000)
def skeleton(text: str) -> str:
    """The consonant skeleton of a romanised token: what survives in Arabic/Hebrew script and
    in Japanese katakana renderings of foreign names.

    Vowels (and non-initial w/y, which abjads write as vowel letters) are dropped; l/r merge
    (katakana has one liquid), v/b/p merge (Arabic has no p or v; katakana writes v as b),
    th/ts/s merge (ث, and katakana writes "th" as s: スミス), f/h merge (フ), z/d merge (ذ ض ظ),
    n before b/m becomes m and final ng becomes n (ン). ``muhammad`` → ``mhmd`` = ``محمد``;
    ``smith`` → ``sms`` = ``スミス`` (sumisu); ``laden`` → ``rdn`` = ``ラディン`` (radin).
    """
    out = text
    for pattern, repl in _SKEL_RULES:
        out = pattern.sub(repl, out)
    return out


# Arabic and Hebrew letters → skeleton consonants ("" = written vowel or glottal, dropped).
_ARABIC_SKEL = {
    "ا": "", "أ": "", "إ": "", "آ": "", "ء": "", "ؤ": "", "ئ": "", "ى": "", "ة": "", "ع": "",
    "ب": "b", "ت": "t", "ث": "s", "ج": "j", "ح": "h", "خ": "h", "د": "d", "ذ": "d", "ر": "r",
    "ز": "d", "س": "s", "ش": "s", "ص": "s", "ض": "d", "ط": "t", "ظ": "d", "غ": "g", "ف": "h",
    "ق": "k", "ك": "k", "ل": "r", "م": "m", "ن": "n", "ه": "h", "و": "w", "ي": "y",
    "پ": "b", "چ": "j", "ژ": "j", "گ": "k", "ک": "k", "ی": "y", "ۀ": "", "ە": "",
}  # fmt: skip
_HEBREW_SKEL = {
    "א": "", "ב": "b", "ג": "g", "ד": "d", "ה": "h", "ו": "w", "ז": "d", "ח": "h", "ט": "t",
    "י": "y", "כ": "k", "ך": "k", "ל": "r", "מ": "m", "ם": "m", "נ": "n", "ן": "n", "ס": "s",
    "ע": "", "פ": "h", "ף": "h", "צ": "s", "ץ": "s", "ק": "k", "ר": "r", "ש": "s", "ת": "t",
}  # fmt: skip


def abjad_skeleton(word: str) -> str:
    """Skeleton of an Arabic or Hebrew word, comparable with :func:`skeleton` of its romanisation.

    ``w``/``y`` (و ي ו י) are kept only word-initially (Walid, Yusuf): elsewhere they mostly write
    long vowels. A final ``h`` (ه ה, mostly ta marbuta or a vowel ending) is dropped.
    """
    table = _ARABIC_SKEL if any(ch in _ARABIC_SKEL for ch in word) else _HEBREW_SKEL
    out: list[str] = []
    for i, ch in enumerate(word):
        c = table.get(ch)
        if c is None:
            continue
        if c in ("w", "y") and i > 0:
            continue
        if ch in "هةה" and i == len(word) - 1 and len(word) > 2:
            continue
        if c == "n" and i + 1 < len(word) and table.get(word[i + 1]) in ("b", "m"):
            c = "m"
        if out and out[-1] == c:
            continue
        out.append(c)
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Japanese
# --------------------------------------------------------------------------------------------


class _Japanese:
    """cutlet (MeCab + UniDic-lite), loaded on first use and guarded by a lock: MeCab taggers are
    not safe to share between threads, and Japanese queries are rare enough that serialising them
    costs nothing measurable.

    A kanji name often has several readings (清司: Seiji / Kiyoshi; 建市: Kenshi / Kenichi), so
    each kanji word of the best analysis is analysed again on its own and the readings of its
    next-best analyses (n-best) are kept as alternatives. (pykakasi would add a dictionary reading
    too, but holds ~120 MB in memory.)
    """

    NBEST = 5
    _HONORIFICS = frozenset(("様", "さん", "さま", "氏", "殿", "君", "くん", "ちゃん"))

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cutlet: Any = None

    def _romaji(self, node: Any) -> str:
        kana = node.feature.kana
        if kana and kana != "*":
            import jaconv  # a dependency of cutlet

            return str(self._cutlet.map_kana(jaconv.kata2hira(kana)))
        return str(self._cutlet.romaji_word(node))

    def words(self, text: str) -> list[tuple[list[str], bool]]:
        """Segment ``text`` into name words; each word as its distinct romanised readings (ASCII,
        lower case, Hepburn) — the best reading, the readings of the next-best analyses that cut
        the same word, the UniDic Latin spelling of a loan name (ジョン → john) — and whether the
        word was written in kanji."""
        with self._lock:
            import cutlet  # type: ignore[import-untyped]

            if self._cutlet is None:
                self._cutlet = cutlet.Cutlet(use_foreign_spelling=False)
            # "・" and "=" separate the parts of a foreign name written in katakana
            # (ウサマ・ビン・ラディン); MeCab would keep some of them inside one word.
            text = cutlet.cutlet.normalize_text(re.sub(r"[・=･]", " ", text))
            # Read the best analysis out first: MeCab reuses its nodes on the next call. A chunk
            # written in kana only is one name word (やまだ, not やま + だ): its pieces are glued.
            best: list[tuple[str, str, str, str]] = []
            for chunk in text.split():
                pieces = []
                for node in self._cutlet.tagger(chunk):
                    lemma = getattr(node.feature, "lemma", None) or ""
                    pieces.append((node.surface, node.feature.pos1, str(self._cutlet.romaji_word(node)), lemma))
                content = [p for p in pieces if p[1] not in ("補助記号", "空白") and p[0] not in self._HONORIFICS]
                if len(content) > 1 and all(_script(ch) == "kana" for ch in chunk):
                    best.append(("".join(p[0] for p in content), "名詞", "".join(p[2] for p in content), ""))
                else:
                    best.extend(pieces)
            # MeCab cuts an unknown given name into single kanji (建 / 市): glue runs of single
            # kanji back into one word, read below through its n-best analyses (kenshi, kenichi).
            merged: list[tuple[str, str, str, str]] = []
            for item in best:
                if (merged and len(item[0]) == 1 and len(merged[-1][0]) >= 1 and _script(item[0]) == "han"
                        and all(_script(ch) == "han" for ch in merged[-1][0]) and len(merged[-1][0]) <= 2
                        and (len(merged[-1][0]) == 1 or merged[-1][3] == "+")):
                    prev = merged[-1]
                    merged[-1] = (prev[0] + item[0], "名詞", prev[2] + item[2], "+")
                else:
                    merged.append(item)
            out: list[tuple[list[str], bool]] = []
            for surface, pos1, roma, lemma in merged:
                if pos1 in ("補助記号", "空白") or not surface.strip():
                    continue
                if pos1 == "接尾辞" and out and surface in self._HONORIFICS:
                    continue  # 様, さん… (but 組 in 山口組 stays)
                readings = [roma]
                if "-" in lemma:  # UniDic: "ジョン-John"; "プーチン-外国" (no spelling known)
                    spelling = lemma.split("-", 1)[1]
                    if spelling.isascii():
                        readings.append(spelling)
                kanji = any(_script(ch) == "han" for ch in surface)
                if kanji:
                    for path in self._cutlet.tagger.nbestToNodeList(surface, self.NBEST):
                        readings.append("".join(self._romaji(n) for n in path))
                clean: list[str] = []
                for r in readings:
                    r = _SPLIT.sub("", anyascii(r).lower())
                    r = _CANONICAL.get(r, r)
                    if r and r not in clean:
                        clean.append(r)
                if clean:
                    out.append((clean, kanji))
            return out


_JAPANESE = _Japanese()


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


def _make_token(text: str, origin: Origin = "latin", alts: tuple[str, ...] = (), skel: str | None = None) -> Token:
    return Token(text=text, key=key(text), skeleton=skel if skel is not None else skeleton(text), origin=origin,
                 alts=tuple(a for a in dict.fromkeys(alts) if a != text))


def _split_abd(word: str) -> list[str]:
    """``abdulrahman`` → ``[abd, rahman]``; ``abdullah`` stays whole (it is one name)."""
    if word in _CANONICAL and _CANONICAL[word] == "abdullah":
        return [word]
    for prefix in _ABD_PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= 3:
            rest = word[len(prefix):]
            for art in ("al", "el", "ul"):
                if rest.startswith(art) and len(rest) - 2 >= 3:
                    rest = rest[2:]
                    break
            if rest in ("lah", "llah", "allah", "ullah"):
                return [word]
            return ["abd", rest]
    return [word]


def _strip_ends(words: list[str], phrases: tuple[tuple[str, ...], ...], removed: list[str]) -> list[str]:
    """Remove any of ``phrases`` from the start and the end of ``words``, repeatedly, keeping at
    least one word."""
    by_last, by_first = _phrase_ends(phrases)
    changed = True
    while changed and len(words) > 1:
        changed = False
        for phrase in by_last.get(words[-1], ()):
            n = len(phrase)
            if len(words) > n and tuple(words[-n:]) == phrase:
                removed.append(" ".join(phrase))
                words = words[:-n]
                changed = True
                break
        if changed or len(words) <= 1:
            continue
        for phrase in by_first.get(words[0], ()):
            n = len(phrase)
            if len(words) > n and tuple(words[:n]) == phrase:
                removed.append(" ".join(phrase))
                words = words[n:]
                changed = True
                break
    return words


@lru_cache(maxsize=8)
def _phrase_ends(
    phrases: tuple[tuple[str, ...], ...],
) -> tuple[dict[str, list[tuple[str, ...]]], dict[str, list[tuple[str, ...]]]]:
    """Phrases by last and by first word (longest first), so stripping looks at a handful."""
    by_last: dict[str, list[tuple[str, ...]]] = {}
    by_first: dict[str, list[tuple[str, ...]]] = {}
    for phrase in sorted(phrases, key=len, reverse=True):
        by_last.setdefault(phrase[-1], []).append(phrase)
        by_first.setdefault(phrase[0], []).append(phrase)
    return by_last, by_first


def _latin_words(words: list[str], schema: str | None, steps: list[str]) -> list[tuple[str, str]]:
    """Token-level rules on lower-case ASCII words (steps 7–9 of the module docstring). Returns
    (token, spelling before canonicalisation) pairs."""
    removed: list[str] = []
    if schema in (None, "person"):
        kept = [w for w in words if w not in TITLES]
        if kept and len(kept) < len(words):
            removed.extend(w for w in words if w in TITLES)
            words = kept
    if schema in (None, "organisation"):
        words = _strip_ends(words, LEGAL_FORMS, removed)
        # a fixed-width field that cut the legal form: "ADMINCHECK LIMI", "… CORPORAT"
        if len(words) > 1 and len(words[-1]) >= 4 and words[-1] not in _LONG_LEGAL_WORDS and any(
                w.startswith(words[-1]) for w in _LONG_LEGAL_WORDS):
            removed.append(words[-1] + "…")
            words = words[:-1]
    if schema == "organisation":
        words = _strip_ends(words, AMBIGUOUS_LEGAL_FORMS, removed)
    # abd al-rahman / abd allah
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        if w == "abd" and nxt in ("allah", "ullah", "llah", "alla"):
            out.append("abdullah")
            i += 2
            continue
        if nxt is not None and len(words) > 1 and (
            w in _ARTICLES or (w in _SUN_ARTICLES and nxt.startswith(_SUN_ARTICLES[w]) and out)
        ):
            removed.append(w)
            i += 1
            continue
        out.extend(_split_abd(w) if w.startswith("abd") else [w])
        i += 1
    canon = []
    for w in out:
        c = _CANONICAL.get(w, w)
        if c != w:
            steps.append(f"{w}→{c}")
        canon.append((c, w))
    if removed:
        steps.append("removed:" + ",".join(removed))
    return canon


def _basic(text: str, steps: list[str]) -> str:
    """NFKC, invisible characters, case folding, homoglyphs."""
    nfkc = unicodedata.normalize("NFKC", text)
    visible = strip_invisible(nfkc)
    if len(visible) != len(nfkc):
        steps.append("invisible-removed")
    folded = visible.casefold().strip()
    folded = re.sub(r"\s+", " ", folded)
    fixed, changed = fix_homoglyphs(folded)
    if changed:
        steps.append("homoglyphs")
    return fixed


def _romanise_chunk(chunk: str, script: str) -> str:
    """Romanise a run of one script with anyascii; Han/Hangul syllables come back capitalised
    and glued together ("JinZhengEn"), so split them at the capitals first."""
    out: str = anyascii(chunk)
    if script in ("han", "hangul"):
        out = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", out)
    return out.lower()


def _runs(text: str) -> list[tuple[str, str]]:
    """Split text into runs of one script (``common`` characters join the current run)."""
    runs: list[tuple[str, str]] = []
    for ch in text:
        s = _script(ch)
        if s == "common" or ch == " ":
            if runs:
                runs[-1] = (runs[-1][0], runs[-1][1] + ch)
            else:
                runs.append(("common", ch))
            continue
        if runs and runs[-1][0] in (s, "common"):
            runs[-1] = (s, runs[-1][1] + ch)
        else:
            runs.append((s, ch))
    return runs


def _korean_tokens(run: str) -> list[Token]:
    """Hangul: one token for the surname (with its usual spellings), one per given-name syllable
    with the McCune–Reischauer-like spelling North Korean names use (jeong → jong/chong)."""
    tokens: list[Token] = []
    for word in run.split():
        syllables = [s for s in word if _script(s) == "hangul"]
        for i, syl in enumerate(syllables):
            rr = anyascii(syl).lower()
            if i == 0 and len(syllables) > 1 and syl in _KOREAN_SURNAMES:
                spellings = _KOREAN_SURNAMES[syl]
                tokens.append(_make_token(spellings[0], "hangul", (rr, *spellings[1:])))
                continue
            mr = rr.replace("eo", "o").replace("eu", "u").replace("ae", "ae")
            alts = {mr}
            for a, b in (("g", "k"), ("d", "t"), ("b", "p"), ("j", "ch")):
                if mr.startswith(a):
                    alts.add(b + mr[len(a):])
            tokens.append(_make_token(rr, "hangul", tuple(sorted(alts))))
    return tokens


def _chinese_tokens(run: str) -> list[Token]:
    """Han read as Chinese: pinyin; a 2–4 character name → surname + given name written as one
    word, the way lists write Chinese names (LI Fangwei)."""
    tokens: list[Token] = []
    for word in run.split():
        syll = _romanise_chunk(word, "han").split()
        if 2 <= len(syll) <= 4:
            tokens.append(_make_token(syll[0], "han"))
            given = "".join(syll[1:])
            tokens.append(_make_token(given, "han", (" ".join(syll[1:]),) if len(syll) > 2 else ()))
        else:
            tokens.extend(_make_token(s, "han") for s in syll)
    return [t for t in tokens if t.text]


def _japanese_tokens(run: str) -> list[Token]:
    # A word written in kanji is a Japanese name read in Hepburn: origin "han", compared like Latin.
    # A katakana word may be a foreign name rendered with invented vowels: origin "kana", which
    # also compares consonant skeletons.
    tokens = []
    for readings, kanji in _JAPANESE.words(run):
        tokens.append(_make_token(readings[0], "han" if kanji else "kana", tuple(readings[1:])))
    return tokens


def _latin_tokens(text: str, schema: str | None, steps: list[str], origin: Origin) -> list[Token]:
    ascii_text = anyascii(text).lower() if not text.isascii() else text
    ascii_text = _APOSTROPHES.sub("", ascii_text).replace("'", "")
    words = [w for w in _SPLIT.split(ascii_text) if w]
    # the spelling before canonicalisation stays as a reading, for prefix matches of truncated
    # names ("SULAI…" is a prefix of "sulaiman", not of its canonical "sulayman")
    return [_latin_token(c, w, origin) for c, w in _latin_words(words, schema, steps)]


@lru_cache(maxsize=200_000)
def _latin_token(text: str, spelling: str, origin: Origin) -> Token:
    """Tokens repeat across the ~25 000 listed names: build each one once."""
    return _make_token(text, origin, (spelling,))


def _abjad_tokens(text: str, origin: Origin) -> list[Token]:
    tokens = []
    for word in re.split(r"[\s\-‐_.,/()]+", text):
        if not word:
            continue
        if origin == "arabic":
            if word in ("الله", "لله"):
                tokens.append(_make_token("allah", origin, skel="rh"))
                continue
            if word.startswith("ال") and len(word) > 3:  # the article, written joined
                word = word[2:]
            elif word.startswith("وال") and len(word) > 4:
                word = word[3:]
        skel = abjad_skeleton(word)
        if not skel:
            continue
        text_form = _SPLIT.sub("", anyascii(word).lower())
        tokens.append(_make_token(text_form or skel, origin, skel=skel))
    return tokens


def normalize_name(name: str, schema: str | None = None) -> list[NameForm]:
    """Normalise one name into one or more :class:`NameForm` (usually one; Han-only text gives a
    Chinese and a Japanese reading). ``schema`` (``person``, ``organisation``, …, or ``None`` when
    unknown) decides whether titles and legal forms are removed. Empty results are dropped: a name
    of punctuation only yields ``[]``."""
    steps: list[str] = []
    text = _basic(name, steps)
    if text.isascii():  # the common case on both sides: no script handling needed
        ascii_tokens = _latin_tokens(text, schema, steps, "latin")
        return [NameForm(name, tuple(ascii_tokens), tuple(dict.fromkeys(steps)))] if ascii_tokens else []
    # CJK honorifics and legal forms are removed in the original script (step 4).
    if any(_script(ch) in ("han", "kana", "hangul") for ch in text):
        stripped = _CJK_HONORIFIC.sub("", text)
        stripped = _CJK_LEGAL.sub(" ", stripped).strip()
        if stripped and stripped != text:
            steps.append("removed:cjk-honorific/legal-form")
            text = stripped
    runs = _runs(text)
    scripts = {s for s, _ in runs} - {"common"}
    has_kana = "kana" in scripts
    forms: list[NameForm] = []

    readings: list[str] = ["zh", "ja"] if ("han" in scripts and not has_kana) else [""]
    for reading in readings:
        form_steps = list(steps)
        tokens: list[Token] = []
        latin_buffer: list[str] = []

        def flush(origin: Origin = "latin", buffer: list[str] = latin_buffer, out: list[Token] = tokens,
                  st: list[str] = form_steps) -> None:
            if buffer:
                out.extend(_latin_tokens(" ".join(buffer), schema, st, origin))
                buffer.clear()

        for script, chunk in runs:
            if script in ("latin", "common"):
                latin_buffer.append(chunk)
            elif script in ("cyrillic", "greek"):
                flush()
                form_steps.append(f"{script}→latin")
                tokens.extend(_latin_tokens(chunk, schema, form_steps, script))  # type: ignore[arg-type]
            elif script in ("arabic", "hebrew"):
                flush()
                form_steps.append(f"{script}→skeleton")
                tokens.extend(_abjad_tokens(chunk, script))  # type: ignore[arg-type]
            elif script == "hangul":
                flush()
                form_steps.append("hangul→latin")
                tokens.extend(_korean_tokens(chunk))
            elif script == "kana" or (script == "han" and (has_kana or reading == "ja")):
                flush()
                if "japanese→romaji" not in form_steps:
                    form_steps.append("japanese→romaji")
                tokens.extend(_japanese_tokens(chunk))
            elif script == "han":
                flush()
                form_steps.append("han→pinyin")
                tokens.extend(_chinese_tokens(chunk))
        flush()
        if tokens:
            forms.append(NameForm(name, tuple(tokens), tuple(dict.fromkeys(form_steps)), reading))
    return forms


def tokens_of(name: str, schema: str | None = None) -> list[str]:
    """Convenience: the token texts of the first form (for tests and debugging)."""
    forms = normalize_name(name, schema)
    return list(forms[0].texts) if forms else []
