"""Escape sequences a terminal (or a spreadsheet, or Markdown) would act on."""

print("\x1b]0;hostile window title\x07")
print("\x1b[2Jscreen cleared")
print("\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\")
print("cell | with pipe \\ and backslash")
print('=HYPERLINK("https://evil.example","formula")')
print("\u202eevil-looking-name.txt")
