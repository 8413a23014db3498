def main():
    print("quantize")

if __name__ == "__main__":
    main()
