"""Prompts written for the demo project: five kinds of everyday assistant work.

Every tenth prompt of each category is held out (split "held_out") so that evaluation
always has prompts the policy never trained on.
"""

CUSTOMER_SUPPORT = [
    "My order arrived with a cracked screen protector. What should I do?",
    "I was charged twice for the same subscription this month. Can you help me get a refund?",
    "How do I reset my password if I no longer have access to my old email address?",
    "The app keeps logging me out every few minutes on my phone. How can I fix this?",
    "Can I change the delivery address after my order has already shipped?",
    "I want to cancel my gym membership but the website has no cancel button. What are my options?",
    "My package says delivered but I never received it. What should I do next?",
    "How do I update the credit card on file for my account?",
    "The coffee machine I bought stopped heating water after two weeks. Is it covered by warranty?",
    "I received the wrong size shoes. How do I exchange them?",
    "Why was my account suspended without any warning?",
    "Can I pause my meal kit subscription while I am on vacation for three weeks?",
    "The discount code SPRING20 is not working at checkout. What is wrong?",
    "How long does a refund usually take to appear on my bank statement?",
    "My internet connection drops every evening around 8 pm. What can I try before calling a technician?",
    "I booked a hotel room for the wrong dates. Can I change them without a fee?",
    "Write a polite reply to a customer who is upset that their flight was delayed by five hours.",
    "A customer asks whether our backpack is waterproof. It is water resistant but not waterproof. Write a clear answer.",
    "How do I export all my data before closing my account?",
    "The invoice I received has the wrong company name on it. How can I get a corrected one?",
    "My smart thermostat shows an error code E4. What does that usually mean?",
    "Can I transfer my concert ticket to a friend?",
    "I forgot to apply my student discount. Can it be applied after purchase?",
    "Write a short apology email to a customer whose order was lost in the warehouse.",
    "How do I turn off email notifications but keep text message alerts?",
    "The bike I ordered arrived with a missing pedal. What is the fastest way to get the part?",
    "Why is my phone bill higher this month than last month?",
    "How can I make sure my online banking account is secure?",
    "A customer wants to return a product after 45 days, but the policy is 30 days. Write a kind but firm reply.",
    "My laptop battery drains very quickly even when it is idle. What could cause this?",
    "How do I add a second driver to my car insurance policy?",
    "I can't find the tracking number for my order. Where should I look?",
]

SUMMARIZATION = [
    "Summarize in one sentence: The city council voted on Tuesday to extend the bike lane network by 40 kilometres over the next three years. Supporters said it would reduce traffic and pollution, while some shop owners worried about losing parking spaces in front of their stores.",
    "Summarize in two sentences: Researchers found that people who took a 20-minute walk after lunch had lower blood sugar levels in the afternoon than those who sat. The effect was strongest in people over 50, and even a 10-minute walk helped.",
    "Give a short summary: The company reported record revenue for the quarter, driven by strong sales of its new headphones. However, profits fell slightly because of higher shipping costs and a large investment in a new factory.",
    "Summarize this for a busy manager: The team finished the login redesign two days early. Testing found three minor bugs, all fixed. The only open risk is that the payment provider has not yet confirmed the new API date.",
    "Summarize in one sentence: A new study of 2,000 students suggests that those who slept at least eight hours before an exam scored on average 7 percent higher than those who stayed up late studying.",
    "Summarize the main point: Honeybees communicate the location of flowers through a 'waggle dance'. The angle of the dance relative to vertical shows the direction of the food relative to the sun, and the length of the waggle shows the distance.",
    "Summarize this email in one line: Hi all, the office will be closed on Friday for electrical maintenance. Please take your laptops home on Thursday and work remotely. The building will reopen on Monday at 8 am.",
    "Summarize for a child: Volcanoes form when hot melted rock called magma rises from deep inside the Earth. When pressure builds up, the magma bursts out through the surface as lava, ash and gas.",
    "Write a one-sentence summary: The museum will open a new wing dedicated to ancient Egyptian art next spring. The wing will display more than 300 objects, many of which have never been shown to the public.",
    "Summarize the key decision: After comparing three vendors, the committee chose the second one because it offered the best support hours, even though its price was about 10 percent higher than the cheapest option.",
    "Summarize in two sentences: The river flooded after four days of heavy rain, forcing about 500 residents to leave their homes. Emergency services set up shelters in two schools, and no injuries were reported.",
    "Summarize: Electric cars are cheaper to run than petrol cars because electricity costs less per kilometre and they need less maintenance. Their purchase price is still higher, but it has been falling every year.",
    "Summarize the complaint in one sentence: I ordered a blue jacket, received a green one, waited two weeks for an exchange, and then got a blue jacket in the wrong size. I am very disappointed.",
    "Summarize this meeting note: We agreed to move the product launch from March to April so the marketing team has time to finish the videos. Sarah will update the timeline and tell the sales team by Friday.",
    "Give a tweet-length summary: Scientists have discovered a new species of frog in the rainforest of Ecuador. The frog is only one centimetre long and has bright orange skin that warns predators it is poisonous.",
    "Summarize in one sentence: The library is extending its opening hours during exam season. From May 1 to June 15 it will stay open until midnight on weekdays and until 8 pm on weekends.",
    "Summarize the argument: Remote work saves employees commuting time and lets companies hire from anywhere, but it can make collaboration harder and leave new employees feeling isolated.",
    "Summarize this recipe in one line: Boil pasta for 10 minutes. Meanwhile fry garlic in olive oil, add chopped tomatoes and simmer for 8 minutes. Mix with the pasta and top with basil and parmesan.",
    "Summarize in plain words: The central bank raised interest rates by a quarter of a percentage point to slow inflation, which has stayed above its 2 percent target for more than a year.",
    "Summarize this review: The hotel was clean and the staff were friendly, but the room was smaller than in the photos and the street noise made it hard to sleep.",
    "Summarize the history in two sentences: The printing press, developed by Johannes Gutenberg around 1440, made books far cheaper to produce. This helped spread literacy and new ideas across Europe.",
    "Summarize the instructions: To set up the router, plug it into the modem, wait for the light to turn green, connect to the network named on the sticker, and open the setup page in your browser.",
    "Summarize in one sentence: The football team won the championship after a penalty shootout, ending a 25-year wait for a title. Their goalkeeper saved two penalties.",
    "Summarize the findings: In the survey, 62 percent of customers said fast delivery mattered most, 25 percent said price, and 13 percent said product reviews.",
    "Summarize this news briefly: A power outage affected 30,000 homes in the northern district for three hours on Sunday evening. The utility company said a damaged cable was the cause.",
    "Summarize the pros and cons: Renting an apartment gives flexibility and fewer maintenance costs, while buying builds long-term wealth but requires a large down payment.",
    "Summarize this story in one sentence: A girl finds an injured bird, cares for it all winter, and in spring watches it fly away with a flock, feeling both sad and proud.",
    "Summarize in one line: The software update fixes a bug that caused the app to crash when uploading photos and adds a dark mode option.",
    "Summarize the policy: Employees may work from home up to two days per week, must be reachable during core hours from 10 am to 3 pm, and need manager approval for extra remote days.",
    "Summarize for a newsletter: The community garden harvested over 200 kilograms of vegetables this season, all donated to the local food bank. Volunteers are welcome to join next year.",
    "Summarize the scientific idea simply: Photosynthesis is the process by which plants use sunlight, water and carbon dioxide to make sugar and release oxygen.",
    "Summarize this feedback: Users love the new search feature but find the settings menu confusing and would like fewer notifications.",
]

TRANSLATION = [
    "Translate into French: Where is the nearest train station?",
    "Translate into Spanish: I would like a table for two, please.",
    "Translate into German: The meeting has been moved to Thursday afternoon.",
    "Translate into Italian: Thank you very much for your help.",
    "Translate into English: Je voudrais un café et un croissant, s'il vous plaît.",
    "Translate into English: ¿Dónde puedo comprar un billete de autobús?",
    "Translate into French: My sister lives in a small village near the sea.",
    "Translate into Spanish: The museum is closed on Mondays.",
    "Translate into German: Could you speak a little more slowly, please?",
    "Translate into Portuguese: Good morning, how are you today?",
    "Translate into English: Das Wetter ist heute sehr schön.",
    "Translate into French: I have been learning to play the piano for three years.",
    "Translate into Spanish: Please send me the report by Friday.",
    "Translate into Italian: The train to Rome leaves at nine o'clock.",
    "Translate into English: Il fait froid ce matin, prends ton manteau.",
    "Translate into German: I am allergic to peanuts.",
    "Translate into French: Can you recommend a good restaurant nearby?",
    "Translate into Spanish: We are going to the beach this weekend.",
    "Translate into English: Ich habe meinen Schlüssel verloren.",
    "Translate into Dutch: Where is the bathroom?",
    "Translate into French: The children are playing in the garden.",
    "Translate into Spanish: How much does this jacket cost?",
    "Translate into English: Mi madre cocina muy bien.",
    "Translate into German: The hotel room has a beautiful view of the mountains.",
    "Translate this greeting into three languages: Happy birthday!",
    "Translate into French and explain any tricky word: I miss you.",
    "Translate into Spanish: The doctor said I should rest for a few days.",
    "Translate into Italian: Do you accept credit cards?",
    "Translate into English: Je ne comprends pas cette question.",
    "Translate into German: Our flight was cancelled because of the storm.",
    "Translate into Spanish, keeping a formal tone: We regret to inform you that your application was not successful.",
    "Translate into French, keeping it casual: See you tomorrow at the usual place!",
]

CREATIVE_WRITING = [
    "Write a four-line poem about the first snow of winter.",
    "Write a short story opening about a lighthouse keeper who finds a message in a bottle.",
    "Write a haiku about a cat sleeping in the sun.",
    "Describe a busy city market at dawn in three sentences.",
    "Write a limerick about a forgetful robot.",
    "Write a short dialogue between a dragon and a librarian.",
    "Write the first paragraph of a mystery set on a night train.",
    "Write a motivational message for someone starting their first job.",
    "Write a short fable about a turtle who wanted to fly.",
    "Invent a name and a one-sentence description for a new ice cream flavour.",
    "Write a four-line poem about the smell of rain.",
    "Describe an old bookshop using all five senses.",
    "Write a short bedtime story about a brave little cloud.",
    "Write a toast for a friend's wedding in under 80 words.",
    "Write a short poem about learning from mistakes.",
    "Write a product description for a magical umbrella that never lets you get wet.",
    "Write a postcard from a traveller visiting Mars for the first time.",
    "Write a two-sentence horror story set in a kitchen.",
    "Write a short song chorus about summer holidays.",
    "Describe a sunset over the ocean without using the words red, orange or sun.",
    "Write a letter from a dog to its owner who just left for work.",
    "Write a riddle whose answer is 'time'.",
    "Write a short scene where two old friends meet after twenty years.",
    "Write a haiku about a mountain lake at night.",
    "Write a short speech a child might give to convince parents to get a pet.",
    "Write a diary entry of a tree that has stood in a park for 200 years.",
    "Write an acrostic poem using the word HOPE.",
    "Write a short superhero origin story for someone whose power is extreme kindness.",
    "Write a tagline for a small family bakery.",
    "Write a short poem about the moon watching over a sleeping town.",
    "Write a funny short story about a sandwich that wanted to be famous.",
    "Write three creative names for a pet goldfish and explain each one.",
]

EXPLANATIONS = [
    "Explain why the sky is blue in simple terms.",
    "What is the difference between weather and climate?",
    "Explain how a vaccine helps the body fight disease.",
    "Why do we have seasons on Earth?",
    "Explain what a computer's memory (RAM) does, using an everyday analogy.",
    "How does a refrigerator keep food cold?",
    "What is compound interest? Give a small example.",
    "Explain why ice floats on water.",
    "What does a prime number mean? List the first five.",
    "Explain the difference between a virus and a bacterium.",
    "How do airplanes stay in the air?",
    "What is photosynthesis and why is it important?",
    "Explain what inflation is to a teenager.",
    "Why does the moon change shape during the month?",
    "What is the difference between a list and a dictionary in Python?",
    "Explain how recycling plastic works.",
    "Why do leaves change colour in autumn?",
    "What is a black hole, in two or three sentences?",
    "Explain the rule of thirds in photography.",
    "How does a bill become a law, in general terms?",
    "What is the difference between 'affect' and 'effect'?",
    "Explain why exercise is good for mental health.",
    "What causes thunder and lightning?",
    "Explain what a percentage is with an example from shopping.",
    "Why do we need sleep?",
    "What is the greenhouse effect?",
    "Explain how GPS knows where you are.",
    "What is the difference between renewable and non-renewable energy?",
    "Explain what an algorithm is using a recipe as an example.",
    "Why is the ocean salty?",
    "How do noise-cancelling headphones work?",
    "Explain what a budget is and why it helps.",
]

CATEGORIES = {
    "customer-support": CUSTOMER_SUPPORT,
    "summarization": SUMMARIZATION,
    "translation": TRANSLATION,
    "creative-writing": CREATIVE_WRITING,
    "explanation": EXPLANATIONS,
}

GUIDELINES = """\
# How to judge

You see one prompt and two responses. Pick the response a careful, helpful assistant
would have given.

1. **Helpful**: does it do what the prompt asks, completely and correctly?
2. **Honest**: no invented facts; it says so when it does not know.
3. **Clear**: well organised, the right length, easy to read.
4. **Harmless**: nothing rude, unsafe or inappropriate.

Choose **tie** when both are equally good, **both bad** when neither is acceptable.
Say how much better the winner is, and add a short rationale when the choice was hard.
Skip a prompt you cannot judge (unclear, needs expert knowledge, offensive).
"""


def demo_prompt_rows() -> list[dict]:
    rows = []
    for category, prompts in CATEGORIES.items():
        for i, text in enumerate(prompts):
            rows.append({"prompt": text, "tags": [category], "split": "held_out" if i % 10 == 9 else "train"})
    return rows
