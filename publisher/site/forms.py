"""The subscribe form: one address, and a field people never see (a honeypot for bots)."""

from django import forms

MAX_ADDRESS = 254  # RFC 5321: the longest address a mail server must accept in a path


class SubscribeForm(forms.Form):
    email = forms.EmailField(
        label="Your e-mail address", max_length=MAX_ADDRESS,
        error_messages={
            "required": "Enter your e-mail address.",
            "invalid": "Enter an e-mail address such as name@example.com.",
            "max_length": f"An e-mail address is at most {MAX_ADDRESS} characters long (this one has "
                          "%(show_value)d).",
        },
        widget=forms.EmailInput(attrs={"autocomplete": "email", "required": True}),
    )
    # Hidden from people by the page's style and from screen readers; bots fill every field.
    website = forms.CharField(required=False, label="Leave this empty",
                              widget=forms.TextInput(attrs={"tabindex": "-1", "autocomplete": "off"}))

    def is_bot(self) -> bool:
        return bool(self.cleaned_data.get("website"))
