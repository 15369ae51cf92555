"""Where the test lists are: the shared official samples and this repository's small fixtures."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
#: ../shared/data/sanctions beside the checkout (the same layout in CI).
SHARED = ROOT.parent / "shared" / "data" / "sanctions"
OFAC_DIR = SHARED / "ofac"
UN_XML = SHARED / "un" / "consolidated.xml"
FIXTURES = ROOT / "tests" / "data" / "sanctions"
