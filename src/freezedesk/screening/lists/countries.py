"""Country names as the lists write them → ISO 3166-1 alpha-2.

The ISO names come from pycountry (maintained, follows ISO changes such as Türkiye or Eswatini).
The lists add their own spellings: OFAC's "Korea, North" and "Burma", the UN's "Iran (Islamic
Republic of)", demonyms ("Palestinian") and older names; those live in :data:`EXTRA_NAMES`.
Matching ignores case, accents, punctuation, word order and the filler words "the", "of", "and",
so "Congo, Democratic Republic of the" and "Democratic Republic of the Congo" are one key.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import pycountry

#: Spellings the official lists use that ISO does not, and demonyms. Lower case, any punctuation.
EXTRA_NAMES: dict[str, str] = {
    "russia": "RU", "burma": "MM", "korea north": "KP", "north korea": "KP", "dprk": "KP",
    "korea south": "KR", "south korea": "KR", "republic of korea": "KR", "palestinian": "PS",
    "palestine": "PS", "palestinian territories": "PS", "west bank": "PS", "gaza": "PS",
    "turkey": "TR", "the gambia": "GM", "macedonia": "MK", "macedonia the former yugoslav republic of": "MK",
    "kosovo": "XK", "vietnam": "VN", "laos": "LA", "iran": "IR", "syria": "SY", "tanzania": "TZ",
    "united states": "US", "usa": "US", "u s a": "US", "u s": "US", "united states of america": "US",
    "uk": "GB", "u k": "GB", "great britain": "GB", "britain": "GB", "england": "GB", "scotland": "GB",
    "czech republic": "CZ", "ivory coast": "CI", "swaziland": "SZ", "cape verde": "CV", "east timor": "TL",
    "holy see": "VA", "vatican": "VA", "brunei": "BN", "moldova": "MD", "bolivia": "BO", "venezuela": "VE",
    "micronesia": "FM", "congo": "CG", "republic of the congo": "CG", "congo brazzaville": "CG",
    "congo republic of the": "CG", "democratic republic of the congo": "CD", "drc": "CD",
    "congo kinshasa": "CD", "zaire": "CD", "hong kong": "HK", "macau": "MO", "macao": "MO", "taiwan": "TW",
    "saint kitts and nevis": "KN", "st kitts and nevis": "KN", "saint lucia": "LC", "st lucia": "LC",
    "saint vincent and the grenadines": "VC", "st vincent and the grenadines": "VC",
    "bosnia herzegovina": "BA", "bosnia": "BA", "curacao": "CW", "emirates": "AE", "uae": "AE",
    "kyrgyz republic": "KG", "slovak republic": "SK", "state of palestine": "PS", "turkiye": "TR",
    # Demonyms: nationality fields sometimes carry the adjective instead of the country.
    "afghan": "AF", "albanian": "AL", "algerian": "DZ", "american": "US", "argentine": "AR", "armenian": "AM",
    "australian": "AU", "austrian": "AT", "azerbaijani": "AZ", "bahraini": "BH", "bangladeshi": "BD",
    "belarusian": "BY", "belgian": "BE", "bosnian": "BA", "brazilian": "BR", "british": "GB", "bulgarian": "BG",
    "burmese": "MM", "burundian": "BI", "cambodian": "KH", "cameroonian": "CM", "canadian": "CA",
    "chadian": "TD", "chilean": "CL", "chinese": "CN", "colombian": "CO", "congolese": "CD", "croatian": "HR",
    "cuban": "CU", "cypriot": "CY", "czech": "CZ", "danish": "DK", "dutch": "NL", "egyptian": "EG",
    "emirati": "AE", "eritrean": "ER", "ethiopian": "ET", "filipino": "PH", "finnish": "FI", "french": "FR",
    "georgian": "GE", "german": "DE", "ghanaian": "GH", "greek": "GR", "guatemalan": "GT", "haitian": "HT",
    "honduran": "HN", "hungarian": "HU", "indian": "IN", "indonesian": "ID", "iranian": "IR", "iraqi": "IQ",
    "irish": "IE", "israeli": "IL", "italian": "IT", "japanese": "JP", "jordanian": "JO", "kazakh": "KZ",
    "kenyan": "KE", "kuwaiti": "KW", "kyrgyz": "KG", "lebanese": "LB", "liberian": "LR", "libyan": "LY",
    "malaysian": "MY", "malian": "ML", "maltese": "MT", "mauritanian": "MR", "mexican": "MX", "moroccan": "MA",
    "nicaraguan": "NI", "nigerian": "NG", "nigerien": "NE", "north korean": "KP", "norwegian": "NO",
    "omani": "OM", "pakistani": "PK", "panamanian": "PA", "peruvian": "PE", "polish": "PL",
    "portuguese": "PT", "qatari": "QA", "romanian": "RO", "russian": "RU", "rwandan": "RW", "saudi": "SA",
    "saudi arabian": "SA", "senegalese": "SN", "serbian": "RS", "singaporean": "SG", "somali": "SO",
    "south african": "ZA", "south korean": "KR", "south sudanese": "SS", "spanish": "ES", "sudanese": "SD",
    "swedish": "SE", "swiss": "CH", "syrian": "SY", "tajik": "TJ", "tanzanian": "TZ", "thai": "TH",
    "tunisian": "TN", "turkish": "TR", "turkmen": "TM", "ugandan": "UG", "ukrainian": "UA", "uzbek": "UZ",
    "venezuelan": "VE", "vietnamese": "VN", "yemeni": "YE", "zimbabwean": "ZW",
}

_FILLER = frozenset({"the", "of", "and"})
# Words that qualify a country without changing it: "possibly Palestinian", "reportedly Iran".
_HEDGES = re.compile(r"^(?:possibly|probably|reportedly|allegedly|presumably|likely)\s+")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.casefold()).split())


def _sorted_key(folded: str) -> str:
    return " ".join(sorted(w for w in folded.split() if w not in _FILLER))


@cache
def _tables() -> tuple[dict[str, str], dict[str, str]]:
    """(exact folded name → code, word-set key → code), built once on first use."""
    exact: dict[str, str] = {}
    for country in pycountry.countries:
        code = str(country.alpha_2)
        for attr in ("name", "official_name", "common_name"):
            value = getattr(country, attr, None)
            if value:
                exact.setdefault(_fold(str(value)), code)
    for name, code in EXTRA_NAMES.items():
        exact[_fold(name)] = code
    by_words: dict[str, str] = {}
    for folded, code in exact.items():
        by_words.setdefault(_sorted_key(folded), code)
    return exact, by_words


@cache
def country_code(name: str | None) -> str | None:
    """ISO 3166-1 alpha-2 for a country name, demonym or code; None when unknown or unstated.

    >>> country_code("Iran (Islamic Republic of)"), country_code("Korea, North"), country_code("Türkiye")
    ('IR', 'KP', 'TR')
    """
    if not name:
        return None
    raw = name.strip()
    if len(raw) == 2 and raw.isalpha():
        found = pycountry.countries.get(alpha_2=raw.upper())
        if found is not None:
            return str(found.alpha_2)
        return "XK" if raw.upper() == "XK" else None
    folded = _HEDGES.sub("", _fold(raw))
    if not folded:
        return None
    if len(folded) == 3 and folded.isalpha():
        found = pycountry.countries.get(alpha_3=folded.upper())
        if found is not None:
            return str(found.alpha_2)
    exact, by_words = _tables()
    return exact.get(folded) or by_words.get(_sorted_key(folded))


def country_codes(names: list[str | None] | tuple[str | None, ...]) -> list[str]:
    """Codes for the names that are known, in order, without repeats."""
    out: dict[str, None] = {}
    for name in names:
        code = country_code(name)
        if code:
            out[code] = None
    return list(out)
