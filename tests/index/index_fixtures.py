"""Small real-text users shared by the index tests (six themes × eight users, plus awkward cases)."""

from __future__ import annotations

THEMES = {
    "hair": [
        "Loves leave-in conditioners and argan oil for frizzy curly hair.",
        "Buys heat protectant sprays and flat irons for sleek straight hair.",
        "Prefers sulfate-free shampoo and deep conditioning hair masks.",
        "Uses dry shampoo and volumizing mousse for fine thin hair.",
        "Likes hair growth serums and biotin supplements for thinning hair.",
        "Wants curl creams and diffusers that define natural curls.",
        "Shops for clip-in hair extensions and human hair wigs.",
        "Needs anti-dandruff shampoo and scalp treatments.",
    ],
    "skin": [
        "Prefers gentle cleansers and hyaluronic acid serums for dry skin.",
        "Uses retinol night creams and vitamin C serums against wrinkles.",
        "Buys oil-free moisturizers and salicylic acid for acne-prone skin.",
        "Loves mineral sunscreen with SPF 50 for sensitive skin.",
        "Looks for fragrance-free lotions for eczema and very dry skin.",
        "Wants exfoliating AHA toners and pore minimizing masks.",
        "Likes under-eye creams that reduce puffiness and dark circles.",
        "Chooses soothing aloe gels and calming creams for redness.",
    ],
    "makeup": [
        "Loves long-wearing matte liquid lipstick in bold red shades.",
        "Buys full-coverage foundation and concealer for an even complexion.",
        "Prefers waterproof mascara and black liquid eyeliner.",
        "Collects eyeshadow palettes with shimmery neutral tones.",
        "Uses makeup brushes and beauty blenders for flawless application.",
        "Wants lightweight tinted moisturizer and cream blush.",
        "Likes setting powder and primer that keep makeup on all day.",
        "Shops for highlighter and bronzer to contour the face.",
    ],
    "nails": [
        "Loves gel nail polish kits with a UV lamp for salon nails at home.",
        "Buys cuticle oil and nail strengthener for brittle nails.",
        "Prefers quick-dry nail polish in pastel colors.",
        "Uses press-on nails and nail glue for quick manicures.",
        "Collects nail art stickers, rhinestones and dotting tools.",
        "Wants acetone-free polish remover that is gentle on nails.",
        "Likes glossy top coats and ridge-filling base coats.",
        "Shops for nail files, buffers and a cuticle pusher set.",
    ],
    "fragrance": [
        "Loves floral perfumes with rose and jasmine notes.",
        "Buys woody eau de parfum with sandalwood and vanilla.",
        "Prefers fresh citrus body mists for summer.",
        "Collects designer fragrance sample sets.",
        "Uses scented body lotion matching her favorite perfume.",
        "Wants long-lasting musky cologne for evenings.",
        "Likes light powdery scents that are not overwhelming.",
        "Shops for travel-size rollerball perfumes.",
    ],
    "shaving": [
        "Buys safety razors and double-edge blades for a close shave.",
        "Prefers beard oil and beard balm to soften facial hair.",
        "Uses electric trimmers for beard and mustache grooming.",
        "Loves shaving cream with a badger brush for wet shaving.",
        "Wants aftershave balm that stops razor burn.",
        "Likes men's face wash and moisturizer for oily skin.",
        "Shops for replacement cartridges for his five-blade razor.",
        "Needs a precision trimmer for nose and ear hair.",
    ],
}


def themed_users() -> list[dict[str, object]]:
    """48 users ``{"user_id", "texts"}``, ids ``<theme>-<i>``, one text each."""
    return [
        {"user_id": f"{theme}-{i}", "texts": [text]}
        for theme, texts in THEMES.items()
        for i, text in enumerate(texts)
    ]


def theme_of(user_id: str) -> str:
    return user_id.rsplit("-", 1)[0]
