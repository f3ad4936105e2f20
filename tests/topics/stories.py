"""A small multilingual news store written for these tests: one story (North Korea arming
Russia) told in English, Indonesian and Polish, a look-alike (South Korean politics) in English
and Indonesian, and unrelated news. Every text here is ours."""

from __future__ import annotations

SEED = """\
North Korea and Russia deepen their military ties

North Korea has sent artillery shells and missiles to Russia for its war in Ukraine, officials in Washington said on Tuesday.
Kim Jong Un travelled to the Russian Far East to meet Vladimir Putin, and the two leaders promised to help each other against what they called Western pressure.
Analysts say Russia pays North Korea with food, fuel and advice on satellites, while Pyongyang gains a powerful friend at the United Nations.
South Korea and Japan warned that the deal breaks several resolutions of the Security Council.
Putin thanked Kim Jong Un for his support, and North Korea promised more help to Russia.
"""

# (title, summary, language)
ENGLISH_STORY = [
    (
        "North Korea ships more shells to Russia",
        "Trains loaded with North Korean shells crossed into Russia this week, and Kim Jong Un "
        "said Pyongyang would stand with Putin until the war ends.",
    ),
    (
        "Putin hosts Kim Jong Un at a launch base",
        "The leaders of Russia and North Korea toured the base together; Putin praised the "
        "friendship between Moscow and Pyongyang.",
    ),
    (
        "Russia and North Korea sign a defence pact",
        "Under the pact North Korea and Russia promise help if either is attacked, and Kim Jong "
        "Un called Putin his closest friend.",
    ),
    (
        "Ukraine finds North Korean missiles on the front",
        "Investigators say missiles fired by Russia at Kharkiv were made in North Korea and sent "
        "with the approval of Kim Jong Un.",
    ),
]
INDONESIAN_STORY = [
    (
        "Korea Utara kirim peluru artileri ke Rusia",
        "Pemimpin Korea Utara Kim Jong Un berjanji terus membantu Rusia dan Presiden Putin dalam "
        "perang di Ukraina, kata pejabat di Pyongyang.",
    ),
    (
        "Kim Jong Un bertemu Putin di Rusia timur",
        "Kedua pemimpin membahas kerja sama militer antara Korea Utara dan Rusia, serta bantuan "
        "pangan untuk Pyongyang.",
    ),
    (
        "Rusia dan Korea Utara teken pakta pertahanan",
        "Putin menyebut Korea Utara sahabat dekat, dan Kim Jong Un mengirim rudal tambahan ke "
        "Rusia minggu ini.",
    ),
]
POLISH_STORY = [
    (
        "Korea Północna wysyła pociski do Rosji",
        "Według wywiadu Korea Północna przekazała Rosji kolejne pociski, a Kim Jong Un obiecał "
        "Putinowi dalszą pomoc; Putin podziękował.",
    ),
    (
        "Putin spotkał się z przywódcą Korei Północnej",
        "Rozmowy w Rosji dotyczyły dostaw broni z Korei Północnej, a Kim Jong Un zaprosił Putina "
        "do Pjongjangu.",
    ),
    (
        "Pakt obronny Rosji i Korei Północnej",
        "Putin i Kim Jong Un podpisali pakt, który zobowiązuje Koreę Północną i Rosję do pomocy "
        "wojskowej.",
    ),
]
LOOK_ALIKES = [
    (
        "South Korea's parliament debates the budget",
        "Lawmakers in Seoul argued over spending as South Korea prepares for elections next "
        "spring.",
    ),
    (
        "South Korea raises interest rates",
        "The central bank of South Korea raised rates to slow prices, officials in Seoul said.",
    ),
    (
        "Parlemen Korea Selatan bahas anggaran",
        "Anggota parlemen di Seoul berdebat soal belanja negara menjelang pemilu di Korea "
        "Selatan tahun depan.",
    ),
    (
        "Bank sentral Korea Selatan naikkan suku bunga",
        "Bank sentral Korea Selatan menaikkan suku bunga untuk menahan harga, kata pejabat di "
        "Seoul.",
    ),
]
UNRELATED = [
    (
        "Storm closes mountain roads",
        "Heavy snow closed roads in the Alps on Sunday and the police asked drivers to stay at "
        "home until the weekend.",
    ),
    (
        "City council approves a new tram line",
        "The council voted for a tram line to the airport; work starts in the spring and the "
        "first trams should run in three years.",
    ),
    (
        "Banjir melanda desa di Jawa Tengah",
        "Hujan deras sejak malam membuat sungai meluap dan warga mengungsi ke sekolah terdekat.",
    ),
    (
        "Nowy most otwarty w Gdańsku",
        "Mieszkańcy mogą już przejść nowym mostem nad kanałem; budowa trwała dwa lata.",
    ),
]


def articles() -> list[tuple[str, str, str]]:
    """(title, summary, language) of every stored article."""
    return (
        [(t, s, "en") for t, s in ENGLISH_STORY]
        + [(t, s, "id") for t, s in INDONESIAN_STORY]
        + [(t, s, "pl") for t, s in POLISH_STORY]
        + [(t, s, "en") for t, s in LOOK_ALIKES[:2]]
        + [(t, s, "id") for t, s in LOOK_ALIKES[2:]]
        + [(t, s, "en") for t, s in UNRELATED[:2]]
        + [(UNRELATED[2][0], UNRELATED[2][1], "id"), (UNRELATED[3][0], UNRELATED[3][1], "pl")]
    )
