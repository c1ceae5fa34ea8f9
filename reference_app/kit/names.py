"""Name vocabularies: children's first names by birth cohort, and additions to Faker's en_GB lists.

They live in the registry because its export watermark rows (`reference_app.exports.watermark`)
draw their names from them; the generator (`synthetic_data.vocab`) imports them from here.

Faker's en_GB first names are an adult generation (Susan, David, Linda), right for carers and
practitioners but not for children born since 2008. The cohort lists below are the most popular
names given to babies in England and Wales in each period, in approximate rank order, written
from the ONS "Baby names in England and Wales" releases; ranks are approximate and the weights
the generator gives them are a smooth rank curve, not the published counts.
"""

from __future__ import annotations

COHORT_FIRST_NAMES: dict[tuple[int, int], dict[str, str]] = {
    (2000, 2012): {
        "female": """
            Olivia Ruby Emily Grace Jessica Sophie Chloe Lily Mia Lucy Amelia Evie Ella Katie
            Ellie Charlotte Summer Hannah Isabella Megan Isabelle Holly Daisy Freya Erin Abigail
            Poppy Millie Lola Molly Imogen Isla Amy Phoebe Sophia Maisie Leah Jasmine Eva
            Scarlett Lauren Caitlin Anna Rebecca Georgia Bethany Niamh Madison Layla Zara Ava
            Elizabeth Alice Matilda Rosie Isabel Paige Maya Harriet Eleanor Keira Brooke Sienna
            Aimee Libby Tilly Darcey Gracie Esme Emma Francesca Aisha Amber Courtney Nicole
            Victoria Hollie Elise Faith Martha Mollie Lexi Maryam Jade Tia Lilly Florence Heidi
        """,
        "male": """
            Jack Oliver Thomas Harry Joshua Alfie Charlie Daniel James William Samuel George
            Joseph Lewis Ethan Mohammed Dylan Benjamin Alexander Jacob Ryan Liam Jake Max Luke
            Tyler Callum Matthew Jayden Oscar Archie Adam Riley Harvey Harrison Lucas Muhammad
            Henry Isaac Leo Connor Edward Finley Logan Noah Cameron Alex Owen Rhys Nathan Jamie
            Michael Mason Toby Aaron Charles Ben Theo Louis Freddie Finlay Leon Harley David
            Mohammad Reece Kian Kai Kyle Brandon Hayden Zachary Kieran Luca Ashton Bailey
            Sebastian Gabriel Sam Evan Bradley Elliot John Taylor Joe Corey Reuben Joel Robert
        """,
    },
    (2013, 2018): {
        "female": """
            Amelia Olivia Isla Emily Ava Poppy Isabella Jessica Lily Sophie Grace Sophia Mia
            Evie Ruby Ella Scarlett Isabelle Chloe Sienna Freya Phoebe Charlotte Daisy Alice
            Florence Eva Sofia Millie Lucy Evelyn Elsie Rosie Imogen Lola Matilda Elizabeth
            Layla Holly Lilly Molly Erin Ellie Maisie Maya Abigail Eliza Georgia Jasmine Esme
            Willow Bella Annabelle Ivy Amber Emilia Emma Harriet Hannah Rose Darcey Nancy Thea
            Martha Orla Violet Maryam Gracie Aria Robyn Harper Lottie Darcie Aisha Ayla Hallie
            Zara Eleanor Leah Mila Penelope Bonnie Luna Heidi Ada Summer Megan Clara Iris Julia
        """,
        "male": """
            Oliver Jack Harry George Jacob Charlie Noah William Thomas Oscar James Muhammad
            Henry Alfie Leo Joshua Freddie Archie Ethan Isaac Alexander Joseph Edward Samuel Max
            Daniel Arthur Lucas Mohammed Logan Theo Harrison Benjamin Mason Sebastian Finley
            Adam Dylan Zachary Riley Teddy Theodore David Toby Jake Louie Elijah Reuben Arlo
            Hugo Luca Jaxon Matthew Harvey Reggie Michael Harley Jude Albert Tommy Luke Stanley
            Jenson Frankie Jayden Gabriel Elliot Mohammad Ronnie Charles Louis Elliott Frederick
            Nathan Lewis Blake Rory Ollie Ryan Tyler Jackson Dexter Ezra Hunter Carter Kai Finn
        """,
    },
    (2019, 2030): {
        "female": """
            Olivia Amelia Isla Ava Mia Ivy Lily Isabella Rosie Sophia Grace Willow Freya
            Florence Emily Ella Poppy Evie Elsie Charlotte Evelyn Sienna Sofia Daisy Phoebe
            Sophie Alice Harper Matilda Isabelle Maya Ruby Millie Eva Luna Hallie Lottie Bonnie
            Esme Aria Margot Mila Delilah Violet Arabella Emilia Maeve Ada Iris Lyla Thea Layla
            Nova Penelope Ayla Orla Lucy Rose Maryam Eliza Aurora Robyn Imogen Edith Nancy
            Darcie Ophelia Hazel Jessica Lilly Harriet Heidi Mabel Beatrice Eleanor Elizabeth
            Clara Ellie Georgia Myla Hannah Zara Gracie Martha Lola Eden Molly Amber Erin Annie
        """,
        "male": """
            Muhammad Noah Oliver George Leo Arthur Oscar Theodore Freddie Theo Archie Harry
            Henry Jack Luca Charlie Finley Alfie Teddy Hudson Lucas Jacob Tommy Rory Thomas Isaac
            Roman Albie Reggie Arlo Edward Joshua William Ezra Elijah Louie Alexander Jude Ronnie
            Max Mohammed Hunter Harrison Ollie Ralph Albert Toby Sonny Grayson Jaxon Louis Bobby
            Otis Ethan Frankie Daniel Sebastian Samuel Mason Joseph Jesse Stanley James Jenson
            Dylan Milo Hugo Rowan Caleb Carter Jasper Ivan Logan Zayn Kai Brody Rupert Felix
            Jackson Elliot Ali Adam Ibrahim Yusuf Otto Ezekiel Alfred Benjamin Nathan Harvey
        """,
    },
}

# Surnames common in England that Faker's en_GB list (500 names, mostly of English origin) lacks,
# with weights on Faker's scale. The weights are rough working estimates of relative frequency,
# not published counts.
EXTRA_SURNAMES: dict[str, float] = {
    "Patel": 0.35,
    "Khan": 0.3,
    "Ahmed": 0.2,
    "Ali": 0.2,
    "Hussain": 0.18,
    "Begum": 0.15,
    "Singh": 0.18,
    "Kaur": 0.12,
    "Shah": 0.1,
    "Rahman": 0.08,
    "Islam": 0.06,
    "Iqbal": 0.06,
    "Akhtar": 0.05,
    "Mahmood": 0.05,
    "Nowak": 0.04,
    "Kowalski": 0.03,
    "Wisniewski": 0.02,
    "Okafor": 0.02,
    "Adeyemi": 0.02,
    "Mensah": 0.02,
    "Osei": 0.02,
    "Nguyen": 0.02,
    "Chen": 0.03,
    "Wong": 0.03,
    "Murphy": 0.12,
    "O'Brien": 0.06,
    "O'Connor": 0.05,
    "Kelly": 0.1,
    "McDonald": 0.06,
    "Campbell": 0.1,
    "Stewart": 0.08,
    "Smyth": 0.02,
    "Thomson": 0.04,
}

# British street-name endings; the generator keeps only those Faker's en_GB list also has.
BRITISH_STREET_SUFFIXES = frozenset(
    [
        "Avenue",
        "Close",
        "Court",
        "Crescent",
        "Drive",
        "Gardens",
        "Green",
        "Grove",
        "Hill",
        "Lane",
        "Mews",
        "Park",
        "Place",
        "Rise",
        "Road",
        "Row",
        "Square",
        "Street",
        "Terrace",
        "View",
        "Walk",
        "Way",
        "Meadow",
        "Meadows",
        "Fields",
        "Parade",
        "Vale",
    ]
)


def words(text: str) -> list[str]:
    """Split a whitespace-separated name list, keeping first occurrences in order."""
    seen: dict[str, None] = {}
    for word in text.split():
        seen.setdefault(word, None)
    return list(seen)
