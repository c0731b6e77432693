#!/usr/bin/python3
"""Golden values for the chat templates of Hugging Face folders (tests/model/test_hf_chat.c).

Writes small folders with chat templates as llava-hf ships them (chat_template.json; the
older tokenizer_config.json "chat_template" string; the list-of-templates form), one with
LLaVA's own conv_llava_v1 system prompt, one with conv_vicuna_v1's, and a ChatML one the
engine does not know, and renders each known template with Jinja2 the way transformers'
apply_chat_template does (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks; the
{% generation %} tag renders its body) for [user: image + question, assistant: answer], or
the generation prompt when there is no answer. Nothing here uses vlmn.

  /usr/bin/python3 tests/reference/chat_template_ref.py tests/data/hftok/chat

Output: the folders and renders.tsv (TAB separated, text escaped as tok_ref.py's esc(),
"\\N" for no answer):
  F <folder> <engine template expected, "-" = not recognised>
  R <folder> <question> <answer> <rendered prompt>
"""
import json
import os
import sys

from jinja2.sandbox import ImmutableSandboxedEnvironment

# llava-hf/llava-1.5-7b-hf chat_template.json
LLAVA_HF = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\\n' }}{% endfor %}{# Render all text next #}{% if message['role'] "
    "!= 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}"
    "{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")

SYS = ("A chat between a curious {w} and an artificial intelligence assistant. The assistant gives "
       "helpful, detailed, and polite answers to the {w}'s questions.")
# LLaVA's conversation.py SeparatorStyle.TWO written as a chat template
CONV_V1 = (
    '{{ "' + SYS + '" }}'
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ ' USER: ' }}{% for c in message['content'] %}{% if c['type'] == 'image' %}{{ '<image>\\n' }}"
    "{% endif %}{% endfor %}{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% elif message['content'][0]['text'] %}{{ ' ASSISTANT: ' }}"
    "{% for c in message['content'] %}{{ c['text'] }}{% endfor %}{{ '</s>' }}"
    "{% else %}{{ ' ASSISTANT:' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ ' ASSISTANT:' }}{% endif %}")
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

FOLDERS = {
    "llava_hf": ("chat_template.json", {"chat_template": LLAVA_HF}, "llava-hf", LLAVA_HF),
    "cfg_string": ("tokenizer_config.json", {"add_bos_token": True, "chat_template": LLAVA_HF}, "llava-hf", LLAVA_HF),
    "cfg_list": ("tokenizer_config.json", {"chat_template": [{"name": "tool_use", "template": CHATML},
                                                             {"name": "default", "template": LLAVA_HF}]},
                 "llava-hf", LLAVA_HF),
    "conv_llava_v1": ("chat_template.json", {"chat_template": CONV_V1.replace("{w}", "human")}, "llava-v1",
                      CONV_V1.replace("{w}", "human")),
    "conv_vicuna_v1": ("chat_template.json", {"chat_template": CONV_V1.replace("{w}", "user")}, "vicuna-v1",
                       CONV_V1.replace("{w}", "user")),
    "chatml": ("chat_template.json", {"chat_template": CHATML}, "-", None),
    "none": ("tokenizer_config.json", {"add_bos_token": True}, "", None),
}

CASES = [("What is shown in the image?", "A cat on a table."), ("Describe it.", None),
         ("Two  spaces  and\na newline", "Yes, two."), ("", "Empty question."), ("Why?", ""),
         ("Ünïcödé 😀?", "Ça va 日本語.")]


def esc(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7f:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    return "".join(out)


def render(template, question, answer):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    # transformers' AssistantTracker: {% generation %} renders its body
    t = env.from_string(template.replace("{% generation %}", "").replace("{% endgeneration %}", ""))
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return t.render(messages=msgs, add_generation_prompt=answer is None)


def main():
    out = sys.argv[1]
    with open(os.path.join(out, "renders.tsv") if os.path.isdir(out) or os.makedirs(out) is None else "", "w",
              encoding="utf-8") as f:
        f.write("# written by tests/reference/chat_template_ref.py\n")
        for name, (fname, obj, expect, tmpl) in FOLDERS.items():
            d = os.path.join(out, name)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, fname), "w", encoding="utf-8") as g:
                json.dump(obj, g, ensure_ascii=False, indent=1)
            f.write("F\t%s\t%s\n" % (name, expect))
            if tmpl is None:
                continue
            for q, a in CASES:
                f.write("R\t%s\t%s\t%s\t%s\n" % (name, esc(q), "\\N" if a is None else esc(a), esc(render(tmpl, q, a))))
    print("wrote %d folders to %s" % (len(FOLDERS), out))


if __name__ == "__main__":
    main()
