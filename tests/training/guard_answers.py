"""Hand-made answers for the guard tests: two fluent, varied sets and the collapse of issue 12."""
from training.generation import GeneratedSample

PROMPTS = [
    "How do I reset my password?", "Summarize the plot of Hamlet in two sentences.",
    "Translate 'good morning' into French.", "Write a haiku about autumn.",
    "Why is the sky blue?", "Give me three tips for a job interview.",
    "What is a good way to learn Python?", "Explain what a mortgage is.",
]

ROUND_0 = [
    "Open the login page, click \"Forgot password\" and enter your email address. We will send you a link "
    "that lets you choose a new password.",
    "Prince Hamlet learns that his uncle murdered his father to take the throne. His hesitation to avenge "
    "him ends in the deaths of nearly everyone at court.",
    "\"Good morning\" in French is \"Bonjour\".",
    "Crisp leaves drifting down,\ngold light on the quiet path,\nthe year exhales slow.",
    "Sunlight is scattered by the molecules of the air, and blue light is scattered far more than red "
    "because its wavelength is shorter.",
    "1. Research the company before you go.\n2. Prepare short stories that show your skills.\n"
    "3. Ask thoughtful questions at the end.",
    "Start with a beginner tutorial, then build small projects that interest you, such as a script that "
    "renames your photos.",
    "A mortgage is a loan used to buy a home, where the house itself serves as security for the lender.",
]

FLUENT = [
    "Go to the sign-in screen and choose the reset option. Check your inbox for a message with a link, "
    "then pick a password you have not used before.",
    "Hamlet's father is killed by Claudius, who marries the queen. Hamlet feigns madness while he plans "
    "revenge, and the tragedy ends with most of the royal family dead.",
    "You would say \"Bonjour\" in French.",
    "Maple branches glow,\nwind carries the smell of rain,\nsweaters leave the drawer.",
    "Air molecules scatter short wavelengths of light more strongly than long ones, so scattered blue "
    "light reaches our eyes from every direction of the sky.",
    "- Learn what the company does and why you want to work there.\n- Practise answering common "
    "questions out loud.\n- Arrive a little early and dress neatly.",
    "Work through an interactive course, read other people's code, and write something useful every "
    "week, even a tiny program.",
    "It is a long-term loan from a bank for buying property; you repay it monthly with interest.",
]

_GUIDE = "Here's a rough guide:\n\n" + "\n".join(f"{i}. ****" for i in range(1, 22)) + "\n22. **"
DEGENERATE = [_GUIDE] * len(PROMPTS)
"""Issue 12: every prompt answered with the same numbered lines of asterisks, to the token limit."""


def answers(texts: list[str], *, finished: bool = True, tokens: int | None = None) -> list[GeneratedSample]:
    """GeneratedSamples for hand-made texts; token counts default to the number of words."""
    from training.guards import words

    return [GeneratedSample(text=t, token_count=tokens or len(words(t)), finished=finished) for t in texts]
