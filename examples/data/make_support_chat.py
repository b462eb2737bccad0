"""Writes ``support_chat.jsonl``: a support-assistant chat set for the fine-tuning example plans.

Skyline Drive is a made-up cloud storage product. Every answer follows one house format the base
model does not use on its own (a ``Category:`` line, numbered steps, a ``Ticket:`` line), so a
short fine-tune visibly lowers held-out loss and raises ROUGE-L. Deterministic: run it again and
the file is byte-identical.

    python examples/data/make_support_chat.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SYSTEM = "You are the support assistant for Skyline Drive."

# Each topic: (category, question variants, steps, ticket line). {x} slots are filled per example.
TOPICS = [
    ("Billing", [
        "I was charged twice for {plan} this month. Can I get my money back?",
        "Why did you bill me twice? I only have one {plan} subscription.",
        "There are two {plan} payments on my card statement for {month}.",
    ], ["Open Settings > Billing > Payment history.", "Find the duplicate {plan} charge from {month}.",
        "Choose Request refund; it reaches your card in 5-7 business days."],
     "Ticket: not needed, refunds are automatic"),
    ("Billing", [
        "How do I download an invoice for {month}?",
        "Where can I find my {month} receipt for my accountant?",
        "I need a PDF invoice for the {plan} plan, {month}.",
    ], ["Open Settings > Billing > Invoices.", "Pick {month} in the list.", "Select Download PDF."],
     "Ticket: not needed"),
    ("Billing", [
        "My card was declined when renewing {plan}. What now?",
        "Payment failed for my {plan} renewal, will I lose my files?",
    ], ["Open Settings > Billing > Payment method.", "Add a new card or update the expiry date.",
        "Select Retry payment; your files stay safe for 30 days."],
     "Ticket: open one if the retry fails twice"),
    ("Plans", [
        "How do I upgrade from {plan} to {bigger}?",
        "I want more space. Can I switch to {bigger}?",
        "What happens to my bill if I move from {plan} to {bigger} mid-month?",
    ], ["Open Settings > Plan.", "Choose {bigger} and confirm.",
        "You pay only the difference for the rest of {month}."],
     "Ticket: not needed"),
    ("Plans", [
        "How do I cancel my {plan} subscription?",
        "Please cancel {plan}, I don't need it anymore.",
    ], ["Open Settings > Plan > Cancel subscription.", "Confirm; {plan} stays active until the end of {month}.",
        "Download anything over the free 5 GB before then."],
     "Ticket: not needed"),
    ("Account", [
        "I forgot my password and the reset email never arrives.",
        "Password reset link isn't showing up in my inbox ({email}).",
        "I can't log in, reset mail to {email} doesn't come.",
    ], ["Check the spam folder of {email} for mail from no-reply@skylinedrive.example.",
        "Add that address to your contacts.", "Request a new link at skylinedrive.example/reset; it is valid for 1 hour."],
     "Ticket: open one if no email arrives within 15 minutes"),
    ("Account", [
        "How do I change the email on my account to {email}?",
        "I have a new address, {email}. How do I update it?",
    ], ["Open Settings > Account > Email.", "Enter {email} and your password.",
        "Click the confirmation link we send to {email}."],
     "Ticket: not needed"),
    ("Security", [
        "I lost my phone with the authenticator app. How do I get in?",
        "Two-factor codes are on my old phone which broke. Help!",
    ], ["Sign in with one of your 10 backup codes.", "Open Settings > Security > Two-factor and remove the old phone.",
        "Scan the new QR code with your new phone."],
     "Ticket: open one if you have no backup codes; we verify your identity within 48 hours"),
    ("Security", [
        "I got an alert about a login from {city}. That wasn't me.",
        "Someone in {city} signed into my account!",
    ], ["Open Settings > Security > Sessions and select Sign out everywhere.", "Change your password.",
        "Turn on two-factor authentication."],
     "Ticket: open one so we can review the {city} sign-in"),
    ("Sync", [
        "Files in my {folder} folder stopped syncing on {device}.",
        "{device} isn't uploading changes from {folder} anymore.",
        "Sync is stuck at 'Preparing' for {folder} on my {device}.",
    ], ["Click the Skyline icon on {device} and choose Pause, then Resume.",
        "Check that {folder} is under the 2 GB single-file limit.",
        "If it still waits, choose Help > Rebuild index."],
     "Ticket: open one with the log from Help > Export log if it keeps failing"),
    ("Sync", [
        "Why do I see files named 'conflicted copy' in {folder}?",
        "I keep getting conflicted copies of documents on {device}.",
    ], ["A conflicted copy appears when two devices edit the same file offline.",
        "Open both versions in {folder} and keep the one you want.", "Delete the other copy."],
     "Ticket: not needed"),
    ("Sync", [
        "How do I stop {folder} from syncing to my {device}?",
        "My {device} is full, can I keep {folder} online only?",
    ], ["Open Preferences > Selective sync on {device}.", "Untick {folder}.",
        "The files stay online and on your other devices."],
     "Ticket: not needed"),
    ("Sharing", [
        "How do I share {folder} with {person}?",
        "Can {person} edit the files in my {folder} folder?",
        "I want to give {person} access to {folder}.",
    ], ["Right-click {folder} and choose Share.", "Enter {person}'s email and pick Can edit or Can view.",
        "Select Send invite."],
     "Ticket: not needed"),
    ("Sharing", [
        "My share link for {folder} says expired.",
        "The link I sent {person} to {folder} no longer works.",
    ], ["Open {folder} > Share > Link settings.", "Set a new expiry date or choose Never.",
        "Copy the link again and send it to {person}."],
     "Ticket: not needed"),
    ("Storage", [
        "It says my storage is full but I deleted lots of files.",
        "Deleted files still count against my {plan} quota?",
    ], ["Deleted files stay in Trash for 30 days and still count.", "Open Trash and select Empty trash.",
        "Your quota updates within 10 minutes."],
     "Ticket: not needed"),
    ("Storage", [
        "Can I get back a file I deleted from {folder} last week?",
        "I accidentally removed a document in {folder}. Is it gone?",
    ], ["Open Trash on the web.", "Find the file from {folder} and select Restore.",
        "Files older than 30 days cannot be restored."],
     "Ticket: not needed"),
    ("Mobile", [
        "Camera upload on my {phone} stopped working.",
        "Photos from my {phone} are not backing up anymore.",
    ], ["Open the Skyline app on your {phone} > Settings > Camera upload.",
        "Allow photo access and background refresh.", "Keep the app open on Wi-Fi until the counter reaches 0."],
     "Ticket: open one if photos stay stuck for more than a day"),
]

PLANS = ["Basic", "Plus", "Family", "Pro"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
FOLDERS = ["Documents", "Photos", "Invoices", "Projects", "Music", "Taxes 2024", "Shared Drafts", "Desktop"]
DEVICES = ["Windows laptop", "MacBook", "work PC", "Linux desktop", "iMac"]
PHONES = ["iPhone", "Android phone", "Pixel", "Galaxy phone"]
PEOPLE = ["Maria", "my accountant", "Tom", "my sister", "Priya", "the design team", "Lukas"]
CITIES = ["Lagos", "Lisbon", "Denver", "Hanoi", "Warsaw", "Toronto"]
NAMES = ["ana", "ben", "chen", "dina", "emil", "fatou", "greta", "hiro"]
OPENERS = ["", "", "", "Hi! ", "Hello, ", "Hey, ", "Quick question: ", "Urgent: "]


def _slots(rng: random.Random) -> dict[str, str]:
    plan = rng.choice(PLANS[:-1])
    return {
        "plan": plan,
        "bigger": PLANS[PLANS.index(plan) + 1],
        "month": rng.choice(MONTHS),
        "folder": rng.choice(FOLDERS),
        "device": rng.choice(DEVICES),
        "phone": rng.choice(PHONES),
        "person": rng.choice(PEOPLE),
        "city": rng.choice(CITIES),
        "email": f"{rng.choice(NAMES)}{rng.randint(1, 99)}@example.com",
    }


def example(rng: random.Random) -> dict[str, object]:
    category, questions, steps, ticket = rng.choice(TOPICS)
    slots = _slots(rng)
    question = rng.choice(OPENERS) + rng.choice(questions).format(**slots)
    lines = [f"Category: {category}", *(f"{i}. {s.format(**slots)}" for i, s in enumerate(steps, 1)),
             ticket.format(**slots)]
    return {"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
        {"role": "assistant", "content": "\n".join(lines)},
    ]}


def main(count: int = 240, seed: int = 7) -> Path:
    rng = random.Random(seed)
    out = Path(__file__).with_name("support_chat.jsonl")
    seen: set[str] = set()
    rows = []
    while len(rows) < count:
        row = example(rng)
        key = json.dumps(row, sort_keys=True)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return out


if __name__ == "__main__":
    print(main())
