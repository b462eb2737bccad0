"""Write preferences.jsonl, rlhf_prompts.jsonl and rlhf_eval_prompts.jsonl: small RLHF / DPO example data (run from anywhere).

The judged property is learnable on purpose: the preferred answer is short, polite and to the
point; the rejected one says the same thing either rudely or buried in rambling. Each of the 80
questions gets one pair against a rude answer and one against a rambling one (160 pairs). The
policy prompts are 40 further questions of the same kind (no answers: the policy writes them), and the
held-out prompts 60 more that no stage trains on: the bake-off answers them with the base and the tuned
policy (60 prompts give a win-rate interval of about ±0.12).

    python examples/data/make_preferences.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (question, polite concise answer, the bare fact a rude or rambling answer wraps)
QUESTIONS = [
    ("How long should I boil an egg for a runny yolk?", "About six minutes in gently boiling water, then cool it in cold water. Enjoy!",
     "six minutes in boiling water"),
    ("How do I keep cut avocado from browning?", "Brush the cut side with lemon juice and wrap it tightly. It should stay green for a day.",
     "lemon juice and tight wrap"),
    ("What is a good way to remember someone's name?", "Repeat it back when you meet them and use it once in the conversation. It really helps.",
     "repeat the name and use it"),
    ("How often should I water a cactus?", "Every two to three weeks in summer, less in winter. Let the soil dry out fully between waterings.",
     "every few weeks, let the soil dry"),
    ("How can I fall asleep faster?", "Keep a fixed bedtime, avoid screens for an hour before bed and keep the room cool and dark.",
     "fixed bedtime, no screens, cool dark room"),
    ("What is the difference between weather and climate?", "Weather is what happens on a given day; climate is the average over many years.",
     "weather is daily, climate is the long-term average"),
    ("How do I make my laptop battery last longer?", "Lower the screen brightness, close unused apps and keep it between 20 and 80 percent charge.",
     "lower brightness, close apps, 20 to 80 percent"),
    ("How can I stop my glasses from fogging up?", "Wash them with a drop of dish soap and let them air dry. The thin film stops the fog.",
     "dish soap film"),
    ("What should I pack for a day hike?", "Water, snacks, a map, sunscreen, a light jacket and a charged phone. Have a great hike!",
     "water, snacks, map, sunscreen, jacket, phone"),
    ("How do I remove a sticker residue from glass?", "Rub it with a little cooking oil, wait a few minutes, then wipe it off with soapy water.",
     "oil, wait, wipe with soapy water"),
    ("How many hours of sleep do adults need?", "Most adults need seven to nine hours a night.", "seven to nine hours"),
    ("How do I convert Celsius to Fahrenheit?", "Multiply by 9/5 and add 32. For example, 20 degrees Celsius is 68 Fahrenheit.",
     "times 9/5 plus 32"),
    ("What is a simple way to start saving money?", "Move a fixed amount to savings on payday, before you spend anything else.",
     "save a fixed amount on payday"),
    ("How do I get rid of fruit flies?", "Set out a small bowl of vinegar with a drop of dish soap, and keep ripe fruit covered.",
     "vinegar with dish soap, cover fruit"),
    ("How can I make my coffee less bitter?", "Use slightly cooler water, around 93 degrees, and a coarser grind. A pinch of salt also helps.",
     "cooler water, coarser grind"),
    ("What is the capital of Australia?", "The capital of Australia is Canberra.", "Canberra"),
    ("How do I tie a secure knot for a clothesline?", "Use a bowline: it holds firmly and is still easy to untie later.", "a bowline"),
    ("How long can cooked rice stay in the fridge?", "Up to four days in a closed container. Reheat it until steaming hot.", "four days"),
    ("Why do onions make you cry?", "Cutting them releases a gas that irritates your eyes. Chilling the onion first makes it milder.",
     "a gas irritates the eyes"),
    ("How do I clean a cast iron pan?", "Rinse it with hot water, scrub with a brush, dry it well and rub in a thin layer of oil.",
     "hot water, brush, dry, thin oil"),
    ("What is a good first houseplant?", "A pothos is a great start: it tolerates low light and forgiving watering.", "a pothos"),
    ("How do I write a good email subject line?", "Keep it short and specific, and say what you need, for example 'Invoice 42: approval by Friday'.",
     "short, specific, say what you need"),
    ("How do I reset a frozen phone?", "Hold the power and volume-down buttons together for about ten seconds until it restarts.",
     "hold power and volume down"),
    ("How can I learn vocabulary in a new language?", "Study a few words daily with spaced repetition flashcards and use them in sentences.",
     "daily spaced repetition"),
    ("How do I know if an egg is still fresh?", "Put it in water: a fresh egg sinks and lies flat, an old one floats.", "fresh eggs sink"),
    ("What is compound interest?", "It is interest earned on both your original money and the interest already added to it.",
     "interest on interest"),
    ("How do I unclog a slow sink?", "Pour in baking soda, then vinegar, wait fifteen minutes and flush with hot water.",
     "baking soda, vinegar, hot water"),
    ("What should I do if I burn my finger?", "Cool it under running water for twenty minutes and cover it loosely. See a doctor if it blisters badly.",
     "cool water for twenty minutes"),
    ("How do I make a strong password?", "Use a long phrase of four or more random words, and a password manager to keep track.",
     "a long phrase of random words"),
    ("How can I reduce eye strain at the computer?", "Every twenty minutes, look at something twenty feet away for twenty seconds.",
     "the 20-20-20 rule"),
    ("How do I keep bread fresh longer?", "Store it in a bread box or paper bag at room temperature, and freeze what you will not eat soon.",
     "bread box, freeze the rest"),
    ("What does RAM do in a computer?", "RAM is short-term memory that holds the programs and data you are using right now.",
     "short-term working memory"),
    ("How do I politely decline an invitation?", "Thank them, say you can't make it, and wish them a good time. No long excuse is needed.",
     "thank them and say you can't come"),
    ("How do I calm down before a presentation?", "Take a few slow breaths, rehearse your first minute, and remember the audience wants you to do well.",
     "slow breaths and rehearse the opening"),
    ("Why is the sky blue?", "Air scatters blue sunlight more than red light, so blue reaches your eyes from all directions.",
     "air scatters blue light more"),
    ("How often should I change my toothbrush?", "Every three months, or sooner if the bristles look frayed.", "every three months"),
    ("How do I boil pasta properly?", "Use plenty of salted boiling water, stir in the first minute and taste a minute before the package time.",
     "salted water, stir, taste early"),
    ("How do I stop a squeaky door hinge?", "Put a few drops of oil or a little petroleum jelly on the hinge pin and swing the door a few times.",
     "oil the hinge pin"),
    ("What is a haiku?", "A short poem of three lines with five, seven and five syllables.", "three lines, 5-7-5 syllables"),
    ("How do I back up my photos?", "Keep one copy on an external drive and one in a cloud service, and check them now and then.",
     "external drive plus cloud"),
    ("How do I get better at running?", "Run three times a week, mostly at an easy pace, and add a little distance each week.",
     "easy runs, three times a week, build slowly"),
    ("How can I keep my phone from overheating?", "Keep it out of direct sun, remove a thick case while charging and close heavy apps.",
     "shade, no case while charging"),
    ("What is the boiling point of water?", "100 degrees Celsius at sea level; it is lower at high altitude.", "100 degrees Celsius"),
    ("How do I fold a fitted sheet?", "Tuck the corners into each other in pairs, lay it flat and fold it into a rectangle.",
     "tuck corners together, fold flat"),
    ("How do I make rice less sticky?", "Rinse the rice until the water runs clear before cooking, and let it rest covered afterwards.",
     "rinse until clear"),
    ("How do I handle a late package?", "Check the tracking page first, then contact the seller with your order number. They can usually help.",
     "check tracking, contact the seller"),
    ("What is a budget?", "A plan for how you will spend and save your money each month.", "a plan for spending and saving"),
    ("How do I remove a coffee stain from a shirt?", "Blot it, rinse from the back with cold water and treat it with a little dish soap before washing.",
     "cold water and dish soap"),
    ("How do I start journaling?", "Write three sentences each evening about your day. Keeping it small makes it a habit.",
     "three sentences a day"),
    ("How long should I rest between workout sets?", "About one to two minutes for general fitness; longer for very heavy lifts.",
     "one to two minutes"),
    ("How can I speed up a slow computer?", "Restart it, remove programs you don't use and check that the disk isn't nearly full.",
     "restart, uninstall, free disk space"),
    ("How do I keep herbs fresh?", "Trim the stems and keep them in a glass of water in the fridge, loosely covered.",
     "stems in water in the fridge"),
    ("What is photosynthesis?", "The process plants use to turn sunlight, water and carbon dioxide into sugar and oxygen.",
     "plants turn light into sugar"),
    ("How do I apologize to a friend?", "Say clearly what you did, that you are sorry, and how you will make it right.",
     "name it, say sorry, make it right"),
    ("How do I store batteries safely?", "Keep them in a cool, dry place in their packaging, away from metal objects.",
     "cool, dry, away from metal"),
    ("How can I make a small room look bigger?", "Use light colours, a large mirror and keep the floor as clear as possible.",
     "light colours and a mirror"),
    ("How do I clean a microwave quickly?", "Heat a bowl of water with lemon slices for three minutes, then wipe the inside clean.",
     "steam with lemon water, wipe"),
    ("What does a VPN do?", "It encrypts your internet traffic and routes it through another server, hiding it from your local network.",
     "encrypts and reroutes traffic"),
    ("How do I memorize a speech?", "Learn it section by section, practise out loud and use key words as cues instead of every line.",
     "sections, out loud, key-word cues"),
    ("How do I stop procrastinating?", "Break the task into a five-minute first step and start it right now. Momentum does the rest.",
     "start a five-minute first step"),
    ("How long do I bake cookies?", "Usually ten to twelve minutes at 180 degrees Celsius, until the edges turn golden.",
     "ten to twelve minutes at 180"),
    ("How do I know if I'm dehydrated?", "Dark urine, thirst, headache and tiredness are common signs. Drink water and rest.",
     "dark urine, thirst, headache"),
    ("What is an index fund?", "A fund that simply buys all the stocks in a market index, which keeps costs low.",
     "a fund that tracks an index"),
    ("How do I keep a conversation going?", "Ask open questions and follow up on what the other person just said.",
     "open questions and follow-ups"),
    ("How do I sharpen a kitchen knife?", "Use a whetstone at about a 15-degree angle, with even strokes on both sides.",
     "whetstone at 15 degrees"),
    ("How do I clean my laptop keyboard?", "Turn it off, tip it over to shake out crumbs, then wipe the keys with a slightly damp cloth.",
     "turn off, shake, damp cloth"),
    ("How can I drink more water?", "Carry a refillable bottle and drink a glass with every meal.", "carry a bottle"),
    ("What time zone is London in?", "London uses Greenwich Mean Time in winter and British Summer Time, one hour ahead, in summer.",
     "GMT, BST in summer"),
    ("How do I plan a weekly menu?", "Pick five dinners on the weekend, write one shopping list, and reuse leftovers for lunches.",
     "five dinners, one list"),
    ("How do I get a stripped screw out?", "Press a wide rubber band between the screwdriver and the screw head for extra grip.",
     "a rubber band for grip"),
    ("How do I take care of a sourdough starter?", "Feed it equal weights of flour and water once a day, or weekly if you keep it in the fridge.",
     "feed flour and water daily"),
    ("How do I write a thank-you note?", "Thank them for the specific thing, say how you used or enjoyed it, and close warmly.",
     "name the gift, how you used it"),
    ("Why do cats purr?", "Mostly when they are content, but also to soothe themselves when stressed or hurt.",
     "contentment or self-soothing"),
    ("How do I prepare for a job interview?", "Research the company, practise answers to common questions and prepare two questions of your own.",
     "research, practise, prepare questions"),
    ("How do I keep my car battery from dying?", "Drive it at least once a week for twenty minutes, and switch off lights when you park.",
     "drive weekly, lights off"),
    ("How do I ripen an avocado faster?", "Put it in a paper bag with a banana at room temperature; it should be ready in a day or two.",
     "paper bag with a banana"),
    ("What is a leap year?", "A year with 366 days, adding February 29th, usually every four years.", "366 days every four years"),
    ("How do I organize a messy desk?", "Clear everything off, put back only what you use daily, and give every item a fixed spot.",
     "keep only daily items, fixed spots"),
    ("How can I be more productive in the morning?", "Plan tomorrow's top task the evening before and do it first, before email.",
     "plan the top task, do it first"),
    ("How do I defrost meat safely?", "Thaw it overnight in the fridge, or in cold water that you change every thirty minutes.",
     "fridge overnight or cold water"),
]

POLICY_QUESTIONS = [
    "How do I clean white sneakers?", "How can I make friends in a new city?", "How do I keep basil alive indoors?",
    "What is the best way to learn to type faster?", "How do I stop my dog from pulling on the leash?",
    "How do I make iced tea?", "How can I lower my electricity bill?", "What is a credit score?",
    "How do I get rid of hiccups?", "How do I pick a ripe watermelon?", "How do I fix a wobbly table?",
    "How do I start learning to code?", "How long should I steep green tea?", "How can I remember to take my vitamins?",
    "What is the tallest mountain in the world?", "How do I clean a showerhead?", "How do I say no to extra work politely?",
    "How can I make my handwriting neater?", "How do I store fresh berries?", "What is inflation?",
    "How do I remove a splinter?", "How do I prevent a cold?", "How do I pack a suitcase efficiently?",
    "How do I find a good book to read?", "How often should I wash my jeans?", "How do I make scrambled eggs fluffy?",
    "What is the difference between a virus and bacteria?", "How do I keep cut flowers fresh?",
    "How do I ask for a raise?", "How can I waste less food?", "How do I clean a stainless steel sink?",
    "What is a good stretch for a stiff neck?", "How do I set up a new router?", "How do I teach a child to ride a bike?",
    "How do I get wax out of a tablecloth?", "How do I make a simple salad dressing?", "Why do leaves change colour in autumn?",
    "How do I deal with a noisy neighbour?", "How do I keep my keys from getting lost?", "What is the speed of light?",
]

EVAL_QUESTIONS = [
    "How do I defrost a freezer quickly?", "What is a good way to start journaling?", "How do I clean a microwave?",
    "How can I stop procrastinating on chores?", "How do I keep mint growing on a windowsill?",
    "What is the difference between a loan and a lease?", "How do I get a stain out of a white shirt?",
    "How long should I rest meat after cooking?", "How can I sleep well on a plane?", "How do I polish silver?",
    "What is a healthy snack for work?", "How do I stop a squeaky floorboard?", "How do I choose a good avocado?",
    "What is the freezing point of water in Fahrenheit?", "How do I make my phone charge faster?", "How can I be more patient?",
    "How do I clean a yoga mat?", "What is a mortgage?", "How do I keep a cutting board from slipping?",
    "How do I warm up before a run?", "How can I keep my desk tidy?", "How do I remove rust from a knife?",
    "What is the largest ocean on Earth?", "How do I thank a colleague for their help?", "How do I cook quinoa?",
    "How can I reduce noise in my bedroom?", "How do I wash a wool sweater?", "What is a good way to learn chess?",
    "How do I keep potatoes from sprouting?", "How do I back up my phone photos?", "Why do dogs wag their tails?",
    "How do I clean a kettle?", "How do I stay focused while studying?", "What is the main gas in the air we breathe?",
    "How do I prepare for a job interview over video?", "How do I keep ice cream soft in the freezer?",
    "How do I fix a dripping tap?", "How can I keep a room cool without air conditioning?", "How do I wrap a gift neatly?",
    "What is a pension?", "How do I get my toddler to eat vegetables?", "How do I clean a computer keyboard?",
    "How long does it take to hard boil an egg?", "How do I stop my shoes from smelling?",
    "What is the difference between baking soda and baking powder?", "How do I remember where I parked?",
    "How do I care for a succulent?", "How do I write a thank-you card?", "How can I drink more water each day?",
    "How do I keep lettuce crisp?", "How do I start running as a beginner?", "How do I stop a zipper from sticking?",
    "What is photosynthesis in one sentence?", "How do I clean grout?", "How do I calm down before an exam?",
    "How do I keep my cat off the kitchen counter?", "How do I reheat pizza so it stays crisp?",
    "What does a firewall do?", "How do I organise my email inbox?", "How do I season a salad without oil?",
]

RUDE_OPENERS = ["Seriously? Everyone knows this.", "Ugh, fine.", "Why are you even asking me this?",
                "Wow, that's a lazy question.", "Do I have to spell everything out?", "Come on, really?"]
RUDE_CLOSERS = ["Figure out the rest yourself.", "Don't ask me again.", "Next time, just search for it.",
                "Not my problem after that.", "Try using your brain.", "Whatever."]
RAMBLE_OPENERS = [
    "Well, that's a really interesting question, and people have wondered about things like this for a long "
    "time, so let me think about it for a moment.",
    "Okay, so, before I answer, there are lots of ways to look at this, and it really depends on your "
    "situation and many other factors.",
    "Great question! I remember reading about this somewhere, though I can't quite recall where, and it made "
    "me think about everyday things.",
]
RAMBLE_CLOSERS = [
    "But of course everyone is different, so maybe try a few things, read a bit more, ask around and decide "
    "for yourself.",
    "Anyway, I could go on for quite a while about the details and exceptions, but that covers some of it, "
    "more or less.",
    "Then again, there are always exceptions, so it's hard to say anything definite, but that is roughly what "
    "I would think.",
]


def rude(fact: str, rng: random.Random) -> str:
    return f"{rng.choice(RUDE_OPENERS)} {fact[0].upper()}{fact[1:]}. {rng.choice(RUDE_CLOSERS)}"


def rambling(fact: str, rng: random.Random) -> str:
    return (f"{rng.choice(RAMBLE_OPENERS)} One thing people mention is {fact}, I suppose, or something along "
            f"those lines. {rng.choice(RAMBLE_CLOSERS)}")


def main() -> None:
    rng = random.Random(7)
    rows = []
    for question, good, fact in QUESTIONS:
        rows.append({"prompt": question, "chosen": good, "rejected": rude(fact, rng)})
        rows.append({"prompt": question, "chosen": good, "rejected": rambling(fact, rng)})
    with open(HERE / "preferences.jsonl", "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(HERE / "rlhf_prompts.jsonl", "w", encoding="utf-8") as fh:
        for question in POLICY_QUESTIONS:
            fh.write(json.dumps({"prompt": question}, ensure_ascii=False) + "\n")
    with open(HERE / "rlhf_eval_prompts.jsonl", "w", encoding="utf-8") as fh:
        for question in EVAL_QUESTIONS:
            fh.write(json.dumps({"prompt": question}, ensure_ascii=False) + "\n")
    print(f"{len(rows)} pairs, {len(POLICY_QUESTIONS)} policy prompts, {len(EVAL_QUESTIONS)} held-out prompts")


if __name__ == "__main__":
    main()
