"""Identity-details masking: ages, allergy lists and social histories become tokens; content stays."""

from __future__ import annotations

import pandas as pd
import pytest

from clinpred.data.identity import apply_identity_setting, mask_identity_details


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("68 YO F ADMITTED W/ CAD", "[AGE] F ADMITTED W/ CAD"),
        ("92 year old man w/ a h/o HTN", "[AGE] man w/ a h/o HTN"),
        ("a 45-year-old and a 3 y/o", "a [AGE] and a [AGE]"),
        ("allergies: morphine (itching)\nlast dose: none", "allergies: [ALLERGIES]\nlast dose: none"),
        (
            "Allergies - \nLevofloxacin (tendinitis)\n\nAttending - x",
            "Allergies: [ALLERGIES]\n\nAttending - x",
        ),
        (
            "# Social - lives with wife, retired plumber\n# Skin - intact",
            "# Social: [SOCIAL]\n# Skin - intact",
        ),
        (
            "Social History:\nLives alone. 30 pack-years.\n\nFamily History:",
            "Social History: [SOCIAL]\n\nFamily History:",
        ),
    ],
)
def test_each_detail_becomes_its_token(text, masked):
    assert mask_identity_details(pd.Series([text], dtype="string")).iloc[0] == masked


def test_clinical_content_missing_values_and_keep_are_left_alone():
    text = pd.Series(
        ["HR 86 BP 155/69, lisinopril 40 mg PO daily, Cr 2.1 (baseline 1.4)", None, ""], dtype="string"
    )
    out = mask_identity_details(text)
    assert out.iloc[0] == text.iloc[0] and pd.isna(out.iloc[1]) and out.iloc[2] == ""
    assert apply_identity_setting(text, "keep") is text


def test_mask_histories_keeps_the_age():
    text = pd.Series(["68 yo F\nAllergies: pcn\n# Social - lives alone, retired"], dtype="string")
    assert (
        apply_identity_setting(text, "mask").iloc[0] == "[AGE] F\nAllergies: [ALLERGIES]\n# Social: [SOCIAL]"
    )
    assert (
        apply_identity_setting(text, "mask_histories").iloc[0]
        == "68 yo F\nAllergies: [ALLERGIES]\n# Social: [SOCIAL]"
    )


@pytest.mark.parametrize(
    ("text", "rounded"),
    [
        ("68 YO F ADMITTED W/ CAD", "60 YO F ADMITTED W/ CAD"),
        ("a 45-year-old and a 3 y/o", "a 40-year-old and a 0 y/o"),
        ("A 102 year old man, HR 86, 30 pack-years", "A 100 year old man, HR 86, 30 pack-years"),
        ("71yo\nAllergies: pcn\n# Social - lives alone", "70yo\nAllergies: [ALLERGIES]\n# Social: [SOCIAL]"),
    ],
)
def test_decade_ages_rounds_each_age_down_and_masks_the_histories(text, rounded):
    assert apply_identity_setting(pd.Series([text], dtype="string"), "decade_ages").iloc[0] == rounded
